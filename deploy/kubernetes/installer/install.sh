#!/bin/sh
# Installs containerd-shim-tessera-v1 on a node: copies the binary into the host's
# /usr/local/bin, adds the `tessera` runtime to containerd's config (once), and restarts
# containerd when the config changed. Run by the installer DaemonSet with the host's root
# file system mounted at $HOST_ROOT; safe to run again (an upgrade replaces the binary).
#
#   HOST_ROOT          the node's root, mounted into the installer (default /host)
#   ASSETS             where the binary and config snippets are (default: this script's dir)
#   CONTAINERD_CONFIG  containerd's config on the node (default /etc/containerd/config.toml)
#   RESTART            `no` to leave containerd alone (default: restart it through nsenter)
set -eu

HOST_ROOT=${HOST_ROOT:-/host}
ASSETS=${ASSETS:-$(dirname "$0")}
CONTAINERD_CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
RESTART=${RESTART:-yes}
shim=containerd-shim-tessera-v1
config="$HOST_ROOT$CONTAINERD_CONFIG"

[ -f "$ASSETS/$shim" ] || { echo "error: $ASSETS/$shim is missing (set ASSETS)" >&2; exit 1; }
if [ ! -f "$config" ]; then
  # containerd runs on its defaults: write them out first, so adding a runtime keeps them.
  echo "error: $CONTAINERD_CONFIG does not exist; write containerd's defaults first" >&2
  echo "  hint: containerd config default > $CONTAINERD_CONFIG (on the node), then run the installer again" >&2
  exit 1
fi
mkdir -p "$HOST_ROOT/usr/local/bin"
# Copy then rename, so a running containerd never starts a half-written shim.
cp "$ASSETS/$shim" "$HOST_ROOT/usr/local/bin/.$shim.new"
chmod 0755 "$HOST_ROOT/usr/local/bin/.$shim.new"
mv -f "$HOST_ROOT/usr/local/bin/.$shim.new" "$HOST_ROOT/usr/local/bin/$shim"
echo "installed $shim in /usr/local/bin"

if grep -q '^[[:space:]]*version[[:space:]]*=[[:space:]]*3' "$config"; then
  snippet="$ASSETS/config-2.x.toml"; cri='"io.containerd.cri.v1.runtime"'
else
  snippet="$ASSETS/config-1.x.toml"; cri='"io.containerd.grpc.v1.cri"'
fi
if grep -q 'containerd\.runtimes\.tessera\]' "$config"; then
  echo "containerd already has the tessera runtime ($CONTAINERD_CONFIG)"
  exit 0
fi
# Written beside it and renamed, so containerd never reads half a config.
new="$config.tessera-new"
cp -p "$config" "$new"
# A runtimes table replaces containerd's built-in one: keep the default runc runtime.
if ! grep -q 'containerd\.runtimes\.runc\]' "$config"; then
  printf '\n[plugins.%s.containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"\n' "$cri" >> "$new"
fi
{ echo; cat "$snippet"; } >> "$new"
mv -f "$new" "$config"
echo "added the tessera runtime to $CONTAINERD_CONFIG"

if [ "$RESTART" = no ]; then
  exit 0
fi
# The node's systemd, in the host's namespaces (the DaemonSet runs with hostPID).
nsenter --target 1 --mount --uts --ipc --net --pid -- systemctl restart containerd
echo "restarted containerd"
