//! Checks a container checkpoint archive the way `checkpointctl show` would (it cannot be
//! installed here): CRIU images under `checkpoint/`, `config.dump` and `spec.dump` as
//! JSON naming the container.
//!
//! What containerd 2.1 writes (seen in a real archive; `internal/cri/server/
//! container_checkpoint_linux.go`): `checkpoint/` with CRIU's images (`inventory.img`,
//! `pages-N.img`, `core-N.img`, ...), `config.dump` — checkpointctl's `ContainerConfig`
//! (`id`, `name`, `rootfsImageName`, `runtime`, `createdTime`, `checkpointedTime`, ...)
//! whose `name` is containerd's CRI container name
//! `<container>_<pod>_<namespace>_<pod uid>_<attempt>` — `spec.dump`, the OCI runtime
//! spec whose annotations carry `io.kubernetes.cri.container-name`,
//! `io.kubernetes.cri.sandbox-name`, `-namespace` and `-uid`, plus `status`,
//! `status.dump`, `stats-dump`, `rootfs-diff.tar` and CRIU's `dump.log`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// Annotation in `spec.dump` naming the container (containerd's CRI annotations).
pub const SPEC_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
/// Annotation in `spec.dump` naming the pod.
pub const SPEC_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
/// Annotation in `spec.dump` naming the pod's namespace.
pub const SPEC_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
/// Annotation in `spec.dump` holding the pod's UID.
pub const SPEC_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";

/// Why an archive is not a valid checkpoint of the expected container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to open archive {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read archive {path} as tar")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {path} has no {entry} (entries: {entries})")]
    Missing {
        path: PathBuf,
        entry: &'static str,
        entries: String,
    },
    #[error("archive {path} has no CRIU images (checkpoint/*.img) (entries: {entries})")]
    NoCriuImages { path: PathBuf, entries: String },
    #[error("{entry} in archive {path} is not valid JSON")]
    InvalidJson {
        path: PathBuf,
        entry: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{entry} in archive {path} has no {field}")]
    NameMissing {
        path: PathBuf,
        entry: &'static str,
        field: &'static str,
    },
    #[error(
        "{entry} in archive {path} names container {found:?} in {field}, expected {expected:?}"
    )]
    WrongContainer {
        path: PathBuf,
        entry: &'static str,
        field: &'static str,
        expected: String,
        found: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One file in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveEntry {
    pub path: String,
    pub size: u64,
}

/// What an archive holds.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    pub path: PathBuf,
    /// Size of the tar file in bytes.
    pub size: u64,
    /// Regular files, in archive order.
    pub files: Vec<ArchiveEntry>,
    /// Number of `checkpoint/*.img` files.
    pub criu_images: usize,
    /// `name` from `config.dump`: containerd's `<container>_<pod>_<ns>_<uid>_<attempt>`.
    pub config_name: Option<String>,
    /// `id` from `config.dump`: the CRI container id.
    pub config_id: Option<String>,
    /// Container name from `spec.dump` (annotation `io.kubernetes.cri.container-name`).
    pub spec_container_name: Option<String>,
    /// Pod name and namespace from `spec.dump`'s annotations.
    pub spec_pod_name: Option<String>,
    pub spec_pod_namespace: Option<String>,
    pub spec_pod_uid: Option<String>,
    #[serde(skip)]
    pub config_dump: Option<Value>,
    #[serde(skip)]
    pub spec_dump: Option<Value>,
}

impl ArchiveReport {
    /// Whether the archive holds a file at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.files.iter().any(|f| f.path == path)
    }

    /// A human summary: size, counts, names, then one line per file.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{}: {} bytes, {} files, {} CRIU images\n",
            self.path.display(),
            self.size,
            self.files.len(),
            self.criu_images
        );
        if let Some(name) = &self.spec_container_name {
            out.push_str(&format!("container: {name}"));
            if let (Some(ns), Some(pod)) = (&self.spec_pod_namespace, &self.spec_pod_name) {
                out.push_str(&format!(" (pod {ns}/{pod})"));
            }
            if let Some(id) = &self.config_id {
                out.push_str(&format!(" id {id}"));
            }
            out.push('\n');
        }
        for f in &self.files {
            out.push_str(&format!("{:>10}  {}\n", f.size, f.path));
        }
        out
    }
}

/// Reads the archive and reports what it holds, without judging it (`config.dump` and
/// `spec.dump` are parsed only when they are valid JSON).
pub fn summarize(path: &Path) -> Result<ArchiveReport> {
    let open_err = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(open_err)?.len();
    let file = File::open(path).map_err(open_err)?;
    let mut tar = tar::Archive::new(file);
    let mut files = Vec::new();
    let mut config_raw = None;
    let mut spec_raw = None;
    for entry in tar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = normalize(&entry.path().map_err(read_err)?.to_string_lossy());
        let size = entry.header().size().map_err(read_err)?;
        if name == "config.dump" || name == "spec.dump" {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(read_err)?;
            if name == "config.dump" {
                config_raw = Some(buf);
            } else {
                spec_raw = Some(buf);
            }
        }
        files.push(ArchiveEntry { path: name, size });
    }
    let criu_images = files.iter().filter(|f| is_criu_image(&f.path)).count();
    let config_dump = config_raw.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let spec_dump = spec_raw.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let config_name = config_dump.as_ref().and_then(|v| str_at(v, &["name"]));
    let config_id = config_dump.as_ref().and_then(|v| str_at(v, &["id"]));
    let annotation = |key: &str| {
        spec_dump
            .as_ref()
            .and_then(|v| str_at(v, &["annotations", key]))
    };
    Ok(ArchiveReport {
        path: path.to_owned(),
        size,
        files,
        criu_images,
        config_name,
        config_id,
        spec_container_name: annotation(SPEC_CONTAINER_NAME),
        spec_pod_name: annotation(SPEC_SANDBOX_NAME),
        spec_pod_namespace: annotation(SPEC_SANDBOX_NAMESPACE),
        spec_pod_uid: annotation(SPEC_SANDBOX_UID),
        config_dump,
        spec_dump,
    })
}

/// Asserts that `path` is a checkpoint archive of the container named `expected`:
/// `checkpoint/` holds CRIU images (`inventory.img` among them), `config.dump` and
/// `spec.dump` are valid JSON, `spec.dump`'s annotation `io.kubernetes.cri.container-name`
/// is `expected`, and `config.dump`'s `name` is `expected` or a runtime's full name for
/// it: containerd's `expected_<pod>_<ns>_<uid>_<attempt>` (checked against the pod in
/// `spec.dump`), CRI-O's `k8s_expected_...`.
pub fn check_archive(path: &Path, expected: &str) -> Result<ArchiveReport> {
    let report = summarize(path)?;
    let entries = || {
        report
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if report.criu_images == 0 {
        return Err(Error::NoCriuImages {
            path: path.to_owned(),
            entries: entries(),
        });
    }
    for entry in ["checkpoint/inventory.img", "config.dump", "spec.dump"] {
        if !report.contains(entry) {
            return Err(Error::Missing {
                path: path.to_owned(),
                entry,
                entries: entries(),
            });
        }
    }
    // Re-parse to report the JSON error itself.
    let config = parse_entry(path, "config.dump")?;
    let spec = parse_entry(path, "spec.dump")?;
    expect_name(
        path,
        "spec.dump",
        "annotations[io.kubernetes.cri.container-name]",
        str_at(&spec, &["annotations", SPEC_CONTAINER_NAME]),
        |found| found == expected,
        expected,
    )?;
    let pod_prefix = match (
        str_at(&spec, &["annotations", SPEC_SANDBOX_NAME]),
        str_at(&spec, &["annotations", SPEC_SANDBOX_NAMESPACE]),
        str_at(&spec, &["annotations", SPEC_SANDBOX_UID]),
    ) {
        (Some(pod), Some(ns), Some(uid)) => format!("{expected}_{pod}_{ns}_{uid}_"),
        _ => format!("{expected}_"),
    };
    expect_name(
        path,
        "config.dump",
        "name",
        str_at(&config, &["name"]),
        |found| {
            let found = found.strip_prefix("k8s_").unwrap_or(found);
            found == expected || found.starts_with(&pod_prefix)
        },
        expected,
    )?;
    Ok(report)
}

fn expect_name(
    path: &Path,
    entry: &'static str,
    field: &'static str,
    found: Option<String>,
    ok: impl Fn(&str) -> bool,
    expected: &str,
) -> Result<()> {
    match found {
        None => Err(Error::NameMissing {
            path: path.to_owned(),
            entry,
            field,
        }),
        Some(found) if !ok(&found) => Err(Error::WrongContainer {
            path: path.to_owned(),
            entry,
            field,
            expected: expected.to_owned(),
            found,
        }),
        Some(_) => Ok(()),
    }
}

fn parse_entry(path: &Path, wanted: &'static str) -> Result<Value> {
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    let mut tar = tar::Archive::new(file);
    for entry in tar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let name = normalize(&entry.path().map_err(read_err)?.to_string_lossy());
        if name == wanted {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(read_err)?;
            return serde_json::from_slice(&buf).map_err(|source| Error::InvalidJson {
                path: path.to_owned(),
                entry: wanted,
                source,
            });
        }
    }
    Err(Error::Missing {
        path: path.to_owned(),
        entry: wanted,
        entries: String::new(),
    })
}

fn normalize(name: &str) -> String {
    name.trim_start_matches("./").to_owned()
}

fn is_criu_image(path: &str) -> bool {
    path.strip_prefix("checkpoint/")
        .is_some_and(|rest| !rest.contains('/') && rest.ends_with(".img"))
}

fn str_at(v: &Value, keys: &[&str]) -> Option<String> {
    let mut cur = v;
    for k in keys {
        cur = cur.get(*k)?;
    }
    cur.as_str().map(str::to_owned)
}

/// Names a fake archive carries.
#[derive(Debug, Clone, Copy)]
pub struct FakeArchive<'a> {
    pub container_id: &'a str,
    pub container_name: &'a str,
    pub pod_name: &'a str,
    pub pod_namespace: &'a str,
    pub pod_uid: &'a str,
}

/// Writes a small archive laid out like containerd's (used by the fake CRI and by tests
/// of code that handles archives); it passes [`check_archive`]. Entries:
/// `checkpoint/inventory.img`, `checkpoint/core-1.img`, `checkpoint/pages-1.img`,
/// `config.dump`, `spec.dump`, `stats-dump`, `rootfs-diff.tar`, `dump.log`.
pub fn write_fake_archive<W: std::io::Write>(out: W, names: FakeArchive<'_>) -> std::io::Result<W> {
    let FakeArchive {
        container_id,
        container_name,
        pod_name,
        pod_namespace,
        pod_uid,
    } = names;
    let config = serde_json::json!({
        "id": container_id,
        "name": format!("{container_name}_{pod_name}_{pod_namespace}_{pod_uid}_0"),
        "rootfsImage": crate::APP_IMAGE,
        "rootfsImageName": crate::APP_IMAGE,
        "runtime": "fake-cri",
        "createdTime": "2026-01-01T00:00:00Z",
        "checkpointedTime": "2026-01-01T00:00:01Z",
        "restored": false,
    });
    let spec = serde_json::json!({
        "ociVersion": "1.1.0",
        "process": {"args": ["/bin/sh", "-c", "sleep inf"]},
        "annotations": {
            SPEC_CONTAINER_NAME: container_name,
            SPEC_SANDBOX_NAME: pod_name,
            SPEC_SANDBOX_NAMESPACE: pod_namespace,
            SPEC_SANDBOX_UID: pod_uid,
            "io.kubernetes.cri.container-type": "container",
        },
    });
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("checkpoint/inventory.img", b"fake CRIU inventory".to_vec()),
        ("checkpoint/core-1.img", b"fake CRIU core".to_vec()),
        ("checkpoint/pages-1.img", vec![0u8; 4096]),
        ("config.dump", serde_json::to_vec_pretty(&config)?),
        ("spec.dump", serde_json::to_vec_pretty(&spec)?),
        ("stats-dump", b"fake stats".to_vec()),
        ("rootfs-diff.tar", vec![0u8; 1024]),
        (
            "dump.log",
            b"(fake) Dumping finished successfully\n".to_vec(),
        ),
    ];
    let mut builder = tar::Builder::new(out);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(0);
        builder.append_data(&mut header, name, data.as_slice())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join("a.tar");
        let file = File::create(&path).expect("create");
        let names = FakeArchive {
            container_id: "id1",
            container_name: name,
            pod_name: "web",
            pod_namespace: "default",
            pod_uid: "u1",
        };
        write_fake_archive(file, names).expect("write");
        path
    }

    #[test]
    fn fake_archive_passes_the_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = check_archive(&fake(dir.path(), "app"), "app").expect("valid");
        assert_eq!(report.criu_images, 3);
        assert_eq!(report.config_name.as_deref(), Some("app_web_default_u1_0"));
        assert_eq!(report.config_id.as_deref(), Some("id1"));
        assert!(report.contains("config.dump"));
        assert_eq!(report.spec_pod_name.as_deref(), Some("web"));
        assert!(
            report
                .summary()
                .contains("container: app (pod default/web)")
        );
    }

    #[test]
    fn wrong_container_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = check_archive(&fake(dir.path(), "app"), "other").expect_err("wrong name");
        assert!(
            err.to_string()
                .contains("names container \"app\" in annotations[io.kubernetes.cri.container-name], expected \"other\""),
            "{err}"
        );
    }

    #[test]
    fn missing_images_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.tar");
        let mut b = tar::Builder::new(File::create(&path).expect("create"));
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        b.append_data(&mut h, "config.dump", &b"{}"[..])
            .expect("append");
        b.finish().expect("finish");
        let err = check_archive(&path, "x").expect_err("no images");
        assert!(err.to_string().contains("has no CRIU images"), "{err}");
    }

    #[test]
    fn not_a_tar_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.tar");
        std::fs::write(&path, b"partial").expect("write");
        assert!(check_archive(&path, "x").is_err());
    }

    /// `config.dump` and `spec.dump` as containerd 2.1.9 wrote them for container `app`
    /// of pod `kcr-e2e/counter` (taken from a real archive, trimmed).
    const REAL_CONFIG: &str = r#"{
        "id": "11d2910219886dd715681e891c1c336344329024bb626a2fa6e92d9acefa8255",
        "name": "app_counter_kcr-e2e_f293c22f-092f-4105-88b0-659cf648398f_0",
        "rootfsImage": "localhost/kcr-test/app:v1",
        "rootfsImageName": "localhost/kcr-test/app:v1",
        "runtime": "io.containerd.runc.v2",
        "createdTime": "2026-11-27T07:42:44.435225779Z",
        "checkpointedTime": "2026-11-27T07:42:44.788702164Z",
        "restoredTime": "0001-01-01T00:00:00Z",
        "restored": false
    }"#;
    const REAL_SPEC: &str = r#"{"ociVersion": "1.2.1", "annotations": {
        "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.image-name": "localhost/kcr-test/app:v1",
        "io.kubernetes.cri.sandbox-id": "fedb890dbf971d2c2e08dac271e321cdecf8c5004f8807fa006c8ca73991135e",
        "io.kubernetes.cri.sandbox-name": "counter",
        "io.kubernetes.cri.sandbox-namespace": "kcr-e2e",
        "io.kubernetes.cri.sandbox-uid": "f293c22f-092f-4105-88b0-659cf648398f"
    }}"#;

    fn archive_with(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("real.tar");
        let mut b = tar::Builder::new(File::create(&path).expect("create"));
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.finish().expect("finish");
        path
    }

    #[test]
    fn containerd_layout_passes_and_wrong_pod_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let images: &[(&str, &[u8])] = &[
            ("checkpoint/inventory.img", b"i"),
            ("checkpoint/pages-1.img", b"p"),
        ];
        let mut files = images.to_vec();
        files.push(("config.dump", REAL_CONFIG.as_bytes()));
        files.push(("spec.dump", REAL_SPEC.as_bytes()));
        let report = check_archive(&archive_with(dir.path(), &files), "app").expect("valid");
        assert_eq!(report.spec_pod_name.as_deref(), Some("counter"));
        assert_eq!(
            report.spec_pod_uid.as_deref(),
            Some("f293c22f-092f-4105-88b0-659cf648398f")
        );

        // config.dump of another pod's `app` container does not pass.
        let other = REAL_CONFIG.replace("app_counter_", "app_other_");
        let mut files = images.to_vec();
        files.push(("config.dump", other.as_bytes()));
        files.push(("spec.dump", REAL_SPEC.as_bytes()));
        let err = check_archive(&archive_with(dir.path(), &files), "app").expect_err("wrong pod");
        assert!(err.to_string().contains("config.dump"), "{err}");

        // Invalid JSON is reported as such.
        let mut files = images.to_vec();
        files.push(("config.dump", b"{not json"));
        files.push(("spec.dump", REAL_SPEC.as_bytes()));
        let err = check_archive(&archive_with(dir.path(), &files), "app").expect_err("bad json");
        assert!(err.to_string().contains("is not valid JSON"), "{err}");

        // A missing spec.dump is named.
        let mut files = images.to_vec();
        files.push(("config.dump", REAL_CONFIG.as_bytes()));
        let err = check_archive(&archive_with(dir.path(), &files), "app").expect_err("no spec");
        assert!(err.to_string().contains("has no spec.dump"), "{err}");
    }

    #[test]
    fn criu_image_rule() {
        assert!(is_criu_image("checkpoint/pages-1.img"));
        assert!(!is_criu_image("checkpoint/sub/x.img"));
        assert!(!is_criu_image("rootfs-diff.tar"));
    }
}
