#!/usr/bin/env python3
"""Writes an OCI image archive (for `ctr image import`) whose one layer is the files of DIR.
usage: make_image.py DIR NAME OUT.tar [ENTRYPOINT [OS/ARCH]]  (default: / and wasip1/wasm)"""
import hashlib, io, json, sys, tarfile, os

def blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{d}"); info.size = len(data)
    out.addfile(info, io.BytesIO(data))
    return f"sha256:{d}", len(data)

src, name, dest = sys.argv[1], sys.argv[2], sys.argv[3]
entrypoint = sys.argv[4] if len(sys.argv) > 4 else "/"
os_name, arch = (sys.argv[5] if len(sys.argv) > 5 else "wasip1/wasm").split("/")
layer_buf = io.BytesIO()
with tarfile.open(fileobj=layer_buf, mode="w") as layer:
    for root, _, files in os.walk(src):
        for f in files:
            p = os.path.join(root, f)
            layer.add(p, arcname=os.path.relpath(p, src))
layer_bytes = layer_buf.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
with tarfile.open(dest, "w") as out:
    ld, ls = blob(out, layer_bytes)
    config = json.dumps({"architecture": arch, "os": os_name, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "config": {"Entrypoint": [entrypoint]}}).encode()
    cd, cs = blob(out, config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]}).encode()
    md, ms = blob(out, manifest)
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": ms, "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"},
        "platform": {"architecture": arch, "os": os_name}}]}).encode()
    for n, data in (("index.json", index), ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')):
        info = tarfile.TarInfo(n); info.size = len(data); out.addfile(info, io.BytesIO(data))
