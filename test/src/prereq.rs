//! Prerequisites of the real-runtime harness: root, containerd 2.x, runc, CRIU that passes
//! `criu check`, the test images. Every failure names the missing piece and the fix, so a
//! test on an unprepared machine fails with a message instead of skipping silently.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `hack/setup.sh` installs CRIU; containerd finds criu via `PATH` only.
pub const CRIU_DIR: &str = "/usr/local/sbin";

/// Environment variable that overrides the directory holding `app.tar` and `pause.tar`.
pub const IMAGES_ENV: &str = "KCR_TEST_IMAGES";

/// What is missing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "not root (effective uid {0}): the CRI harness runs containerd, runc and CRIU, which need root"
    )]
    NotRoot(u32),
    #[error("{what} not found on PATH ({path}): run `sudo hack/setup.sh`")]
    NotFound { what: &'static str, path: String },
    #[error(
        "containerd 2.x not found on PATH: `{binary} --version` says {found:?}: run `sudo hack/setup.sh`"
    )]
    ContainerdVersion { binary: PathBuf, found: String },
    #[error("failed to run {binary}")]
    Run {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("criu check fails ({binary}): {output}: run `sudo hack/setup.sh` (needs CRIU >= 4.1)")]
    CriuCheck { binary: PathBuf, output: String },
    #[error(
        "test image {0} is missing: run `hack/build-test-images.sh` (or `sudo hack/setup.sh`), or point {IMAGES_ENV} at a directory holding app.tar and pause.tar"
    )]
    ImageMissing(PathBuf),
    #[error("/etc/hosts does not exist: containerd copies it into host-network pods")]
    NoEtcHosts,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The binaries the harness runs, resolved on [`harness_path`].
#[derive(Debug, Clone)]
pub struct Runtime {
    pub containerd: PathBuf,
    pub containerd_version: String,
    pub ctr: PathBuf,
    pub shim: PathBuf,
    pub runc: PathBuf,
    pub criu: PathBuf,
}

/// `PATH` for containerd and its children: `/usr/local/sbin` first (CRIU), then the
/// caller's `PATH`, then the standard sbin directories.
pub fn harness_path() -> OsString {
    let mut dirs: Vec<PathBuf> = vec![PathBuf::from(CRIU_DIR)];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for extra in ["/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        if seen.contains(d) {
            false
        } else {
            seen.push(d.clone());
            true
        }
    });
    std::env::join_paths(dirs).unwrap_or_else(|_| OsString::from(CRIU_DIR))
}

/// Finds an executable file named `binary` in the directories of `path`.
pub fn find_on_path(binary: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Directory of the test images: `$KCR_TEST_IMAGES`, else `<workspace>/.cache/images`.
pub fn images_dir() -> PathBuf {
    match std::env::var_os(IMAGES_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/images"),
    }
}

/// Fails unless the effective uid is 0.
pub fn check_root() -> Result<()> {
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        Ok(())
    } else {
        Err(Error::NotRoot(uid))
    }
}

/// Checks root, containerd 2.x, ctr, the runc shim, runc, `criu check` and `/etc/hosts`.
pub fn check_runtime() -> Result<Runtime> {
    check_root()?;
    let path = harness_path();
    let find = |binary: &str, what: &'static str| {
        find_on_path(binary, &path).ok_or_else(|| Error::NotFound {
            what,
            path: path.to_string_lossy().into_owned(),
        })
    };
    let containerd = find("containerd", "containerd 2.x")?;
    let version = run(&containerd, &["--version"], &path)?;
    let containerd_version = version
        .stdout
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .trim_start_matches('v')
        .to_owned();
    if !containerd_version.starts_with("2.") {
        return Err(Error::ContainerdVersion {
            binary: containerd,
            found: format!("{}{}", version.stdout.trim(), version.stderr.trim()),
        });
    }
    let ctr = find("ctr", "ctr (containerd's client)")?;
    let shim = find("containerd-shim-runc-v2", "containerd-shim-runc-v2")?;
    let runc = find("runc", "runc")?;
    let criu = find("criu", "criu (>= 4.1, in /usr/local/sbin)")?;
    let check = run(&criu, &["check"], &path)?;
    if !check.success {
        let output = format!("{} {}", check.stdout.trim(), check.stderr.trim());
        return Err(Error::CriuCheck {
            binary: criu,
            output: output.trim().to_owned(),
        });
    }
    if !Path::new("/etc/hosts").is_file() {
        return Err(Error::NoEtcHosts);
    }
    Ok(Runtime {
        containerd,
        containerd_version,
        ctr,
        shim,
        runc,
        criu,
    })
}

/// Checks that `dir` holds `app.tar` and `pause.tar`; returns their paths.
pub fn check_images(dir: &Path) -> Result<[PathBuf; 2]> {
    let app = dir.join("app.tar");
    let pause = dir.join("pause.tar");
    for image in [&app, &pause] {
        if !image.is_file() {
            return Err(Error::ImageMissing(image.clone()));
        }
    }
    Ok([app, pause])
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

fn run(binary: &Path, args: &[&str], path: &OsStr) -> Result<Output> {
    let out = Command::new(binary)
        .args(args)
        .env("PATH", path)
        .output()
        .map_err(|source| Error::Run {
            binary: binary.to_owned(),
            source,
        })?;
    Ok(Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_path_puts_criu_dir_first() {
        let path = harness_path();
        let first = std::env::split_paths(&path).next();
        assert_eq!(first, Some(PathBuf::from(CRIU_DIR)));
    }

    #[test]
    fn missing_image_names_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = check_images(dir.path()).expect_err("no images");
        let msg = err.to_string();
        assert!(msg.contains("app.tar"), "{msg}");
        assert!(msg.contains("hack/build-test-images.sh"), "{msg}");
    }

    #[test]
    fn not_found_names_setup() {
        let err = Error::NotFound {
            what: "containerd 2.x",
            path: "/nowhere".into(),
        };
        assert_eq!(
            err.to_string(),
            "containerd 2.x not found on PATH (/nowhere): run `sudo hack/setup.sh`"
        );
    }
}
