//! The node installer (deploy/kubernetes/installer/install.sh) on a node root made by the
//! test: it installs the shim, adds the `tessera` runtime to containerd 1.x and 2.x configs
//! once, keeps containerd's runc runtime, and refuses a node without a config, saying how
//! to fix it. (The CRI test in containerd.rs runs containerd on a config it wrote.)

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// A node root with `config` (if any) as containerd's config, and the installer's assets.
fn node(config: Option<&str>) -> (tempfile::TempDir, tempfile::TempDir) {
    let host = tempfile::tempdir().unwrap();
    if let Some(config) = config {
        std::fs::create_dir_all(host.path().join("etc/containerd")).unwrap();
        std::fs::write(host.path().join("etc/containerd/config.toml"), config).unwrap();
    }
    let assets = tempfile::tempdir().unwrap();
    std::fs::write(assets.path().join("containerd-shim-tessera-v1"), "#!/bin/sh\n").unwrap();
    for snippet in ["config-1.x.toml", "config-2.x.toml"] {
        std::fs::copy(deploy().join("containerd").join(snippet), assets.path().join(snippet)).unwrap();
    }
    (host, assets)
}

fn install(host: &Path, assets: &Path) -> Output {
    Command::new(deploy().join("installer/install.sh")).env("HOST_ROOT", host).env("ASSETS", assets).env("RESTART", "no").output().unwrap()
}

fn config(host: &Path) -> String {
    std::fs::read_to_string(host.join("etc/containerd/config.toml")).unwrap()
}

#[test]
fn a_containerd_1_config_gets_the_runtime_once_and_the_shim_is_installed() {
    let existing = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n";
    let (host, assets) = node(Some(existing));
    let out = install(host.path(), assets.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shim = host.path().join("usr/local/bin/containerd-shim-tessera-v1");
    assert_eq!(std::fs::metadata(&shim).unwrap().permissions().mode() & 0o777, 0o755);
    let written = config(host.path());
    assert!(written.starts_with(existing), "what was there is kept:\n{written}");
    assert_eq!(written.matches("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.tessera]").count(), 1, "{written}");
    assert_eq!(written.matches("runtimes.runc]").count(), 1, "{written}");
    assert!(written.contains("runtime_type = \"io.containerd.tessera.v1\""), "{written}");

    // Again (an upgrade): the binary is replaced, the config left as it is.
    let out = install(host.path(), assets.path());
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("already has the tessera runtime"));
    assert_eq!(config(host.path()), written);
}

#[test]
fn a_containerd_2_config_gets_the_runtime_under_the_new_plugin_and_keeps_runc() {
    let (host, assets) = node(Some("version = 3\n"));
    assert!(install(host.path(), assets.path()).status.success());
    let written = config(host.path());
    assert!(written.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.tessera]"), "{written}");
    assert!(written.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc]"), "a runtimes table replaces containerd's built-in one:\n{written}");
    assert!(!written.contains("io.containerd.grpc.v1.cri"), "{written}");
}

#[test]
fn a_node_without_a_containerd_config_is_refused_with_the_fix() {
    let (host, assets) = node(None);
    let out = install(host.path(), assets.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("/etc/containerd/config.toml does not exist") && err.contains("containerd config default"), "{err}");
    assert!(!host.path().join("etc/containerd/config.toml").exists() && !host.path().join("usr/local/bin").exists(), "nothing half-done");
}
