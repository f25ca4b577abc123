#!/usr/bin/env python3
"""Write minimal OCI image archives (oci-layout + index.json + blobs) holding a
static busybox, for `ctr -n k8s.io images import`. Deterministic: fixed mtimes,
sorted entries, so the digests only change when busybox does."""
import hashlib, io, json, os, subprocess, sys, tarfile

busybox, out = sys.argv[1], sys.argv[2]
applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()

def rootfs_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add_dir(name, mode=0o755):
            ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = mode; ti.mtime = 0
            t.addfile(ti)
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "var", "root"]:
            add_dir(d, 0o1777 if d == "tmp" else 0o755)
        data = open(busybox, "rb").read()
        ti = tarfile.TarInfo("bin/busybox"); ti.size = len(data); ti.mode = 0o755; ti.mtime = 0
        t.addfile(ti, io.BytesIO(data))
        for a in sorted(set(applets)):
            if a == "busybox":
                continue
            ti = tarfile.TarInfo("bin/" + a); ti.type = tarfile.SYMTYPE; ti.linkname = "busybox"; ti.mtime = 0
            t.addfile(ti)
        for name, body in [("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
                           ("etc/group", b"root:x:0:\n"),
                           ("etc/hosts", b"127.0.0.1 localhost\n")]:
            ti = tarfile.TarInfo(name); ti.size = len(body); ti.mode = 0o644; ti.mtime = 0
            t.addfile(ti, io.BytesIO(body))
    return buf.getvalue()

def write_image(path, ref, cmd, layer):
    blobs = {}
    def blob(data: bytes, media):
        d = hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return {"mediaType": media, "digest": "sha256:" + d, "size": len(data)}
    layer_desc = blob(layer, "application/vnd.oci.image.layer.v1.tar")
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        "history": [{"created_by": "kubectl-checkpoint hack/oci_image.py"}],
    }
    cfg_desc = blob(json.dumps(config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cfg_desc, "layers": [layer_desc]}
    man_desc = blob(json.dumps(manifest, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json")
    man_desc["annotations"] = {"io.containerd.image.name": ref,
                               "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}
    man_desc["platform"] = {"architecture": "amd64", "os": "linux"}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [man_desc]}
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w") as t:
        def add(name, data):
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 0
            t.addfile(ti, io.BytesIO(data))
        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", json.dumps(index, sort_keys=True).encode())
        for d, data in sorted(blobs.items()):
            add("blobs/sha256/" + d, data)
    os.replace(tmp, path)

layer = rootfs_layer()
counter = ["/bin/sh", "-c", "i=0; while true; do echo \"count $i\"; i=$((i+1)); sleep 1; done"]
write_image(os.path.join(out, "app.tar"), "localhost/kcr-test/app:v1", counter, layer)
write_image(os.path.join(out, "pause.tar"), "localhost/kcr-test/pause:v1", ["/bin/sleep", "inf"], layer)
