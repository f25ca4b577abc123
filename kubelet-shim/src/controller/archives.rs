//! Where the node agent keeps the archives of PodCheckpoints, and the file
//! work around them.
//!
//! One directory per object, named by its UID:
//! `<root-dir>/checkpoints/<uid>/checkpoint-<pod>_<ns>-<container>-<RFC3339>.tar`.
//! The runtime writes to a hidden temporary name in that directory
//! (`.checkpoint-….tar.partial`), renamed to the final name once the archive
//! is complete, private (0600) and digested; so a final name always means a
//! whole archive, and a restarted agent can tell the two apart. The status
//! gives paths relative to `<root-dir>/checkpoints` (`<uid>/checkpoint-….tar`),
//! as KEP-5823 keeps host paths out of the API.
//!
//! A directory named by a UID marks the agent's files: the kubelet's own
//! archives (and the synchronous endpoint's) sit directly in `checkpoints/`
//! and are never touched here; only directories whose name is a UID are ever
//! removed, and never through a symbolic link. Each directory also holds a
//! marker file ([`MARKER`], the object's `namespace/name`): a directory
//! whose object is gone (an orphan) is removed only if its name is a UUID
//! and it carries the marker.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use api_types::archive::{ARCHIVE_SUFFIX, archive_file_name, archive_prefix};
use api_types::k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

/// The marker file in each object directory the agent creates: its
/// `namespace/name`. Only a directory with a UUID name and this marker is
/// ever removed without its object (an orphan).
pub const MARKER: &str = ".podcheckpoint";

/// Suffix of the temporary name the runtime writes to.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// Most archives of one container in one object within one second.
const MAX_NAMES_PER_SECOND: u32 = 1000;

/// Read buffer for digests.
const DIGEST_BUFFER: usize = 256 * 1024;

/// The agent's part of `<root-dir>/checkpoints`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `<root-dir>/checkpoints`.
    pub root: PathBuf,
}

/// What removing an object's directory removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub files: u64,
    pub bytes: u64,
}

/// Whether `s` can name an object directory: a Kubernetes UID (a UUID;
/// letters, digits and `-`, at most 64), so never `.`, `..` or a path.
pub fn is_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether `s` is a UUID as Kubernetes writes UIDs
/// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower-case hex): the only
/// directory names the orphan sweep considers.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

fn invalid_uid(uid: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{uid:?} is not a UID: refusing to use it as a directory name"),
    )
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `<root>/<uid>`, for a valid UID.
    pub fn object_dir(&self, uid: &str) -> io::Result<PathBuf> {
        if !is_uid(uid) {
            return Err(invalid_uid(uid));
        }
        Ok(self.root.join(uid))
    }

    /// Creates `<root>/<uid>` (0700) if needed; a symbolic link or a file
    /// there is an error.
    pub fn create_object_dir(&self, uid: &str) -> io::Result<PathBuf> {
        let dir = self.object_dir(uid)?;
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let meta = fs::symlink_metadata(&dir)?;
        if !meta.file_type().is_dir() {
            return Err(io::Error::other(format!(
                "{} is not a directory (symbolic links are not followed)",
                dir.display()
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(dir)
    }

    /// Marks `dir` as the agent's, for the object `owner` (`namespace/name`):
    /// writes [`MARKER`] (0600) unless it is there.
    pub fn mark(dir: &Path, owner: &str) -> io::Result<()> {
        let marker = dir.join(MARKER);
        if fs::symlink_metadata(&marker).is_ok() {
            return Ok(());
        }
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&marker)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e),
        };
        f.write_all(format!("{owner}\n").as_bytes())
    }

    /// Whether `dir` carries the agent's [`MARKER`] (a regular file, not a link).
    pub fn is_marked(dir: &Path) -> bool {
        fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.file_type().is_file())
    }

    /// The first free final name for a container's archive at `now` in
    /// `dir`, and its temporary name: `(final, partial)`. Neither exists.
    pub fn new_archive_paths(
        dir: &Path,
        pod: &str,
        namespace: &str,
        container: &str,
        now: Timestamp,
    ) -> io::Result<(PathBuf, PathBuf)> {
        for attempt in 1..=MAX_NAMES_PER_SECOND {
            let name = archive_file_name(pod, namespace, container, now, attempt);
            let final_path = dir.join(&name);
            let partial = dir.join(format!(".{name}{PARTIAL_SUFFIX}"));
            if fs::symlink_metadata(&final_path).is_err() && fs::symlink_metadata(&partial).is_err()
            {
                return Ok((final_path, partial));
            }
        }
        Err(io::Error::other(format!(
            "no free archive name for {namespace}/{pod}/{container} in this second"
        )))
    }

    /// `path` relative to the root (`<uid>/checkpoint-….tar`), as the status
    /// gives it.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// The newest complete archive of `container` in `dir`, if any (used by
    /// a restarted agent).
    pub fn find_archive(
        dir: &Path,
        pod: &str,
        namespace: &str,
        container: &str,
    ) -> Option<PathBuf> {
        let prefix = archive_prefix(pod, namespace, container);
        let mut found: Vec<(String, PathBuf)> = fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let rest = name.strip_prefix(&prefix)?;
                is_stamp(rest).then(|| (rest.to_owned(), e.path()))
            })
            .collect();
        // RFC 3339 stamps sort as text; `-N` after the same second sorts later.
        found.sort_by_key(|(rest, _)| stamp_key(rest));
        found.pop().map(|(_, p)| p)
    }

    /// Removes `<root>/<uid>` and everything in it. Only a real directory
    /// named by a UID is removed; a missing one is no error.
    pub fn remove_object_dir(&self, uid: &str) -> io::Result<Removed> {
        let dir = self.object_dir(uid)?;
        let meta = match fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removed::default()),
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_dir() {
            return Err(io::Error::other(format!(
                "{} is not a directory: not removing it",
                dir.display()
            )));
        }
        let mut removed = Removed::default();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if let Ok(m) = entry.metadata()
                && m.is_file()
                && entry.file_name() != MARKER
            {
                removed.files += 1;
                removed.bytes += m.len();
            }
        }
        fs::remove_dir_all(&dir)?;
        Ok(removed)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ[-N].tar`: what follows a container's prefix in
/// its archive names (so `app-2`'s archives are not taken for `app`'s).
fn is_stamp(rest: &str) -> bool {
    let Some(rest) = rest.strip_suffix(ARCHIVE_SUFFIX) else {
        return false;
    };
    if rest.len() < 20 || !rest.is_char_boundary(20) {
        return false;
    }
    let (stamp, tail) = rest.split_at(20);
    let shape = stamp.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        19 => b == b'Z',
        _ => b.is_ascii_digit(),
    });
    shape
        && (tail.is_empty()
            || tail
                .strip_prefix('-')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

fn stamp_key(rest: &str) -> (String, u32) {
    let rest = rest.strip_suffix(ARCHIVE_SUFFIX).unwrap_or(rest);
    let (stamp, tail) = rest.split_at(rest.len().min(20));
    let n = tail
        .strip_prefix('-')
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    (stamp.to_owned(), n)
}

/// Size and lower-case hex SHA-256 of a file, read once.
pub fn digest(path: &Path) -> io::Result<(u64, String)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; DIGEST_BUFFER];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_only() {
        assert!(is_uid("37481bae-d3b7-4e5a-8ece-ec5eab5315ea"));
        for bad in ["", ".", "..", "a/b", "../x", "a b", &"a".repeat(65)] {
            assert!(!is_uid(bad), "{bad:?}");
        }
        let l = Layout::new("/r/checkpoints");
        assert!(l.object_dir("..").is_err());
        assert_eq!(
            l.object_dir("abc-1").unwrap(),
            PathBuf::from("/r/checkpoints/abc-1")
        );
    }

    #[test]
    fn names_stamps_and_recovery_lookup() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let dir = layout.create_object_dir("u-1").unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let at: Timestamp = "2026-11-30T07:00:00Z".parse().unwrap();
        let (f1, p1) = Layout::new_archive_paths(&dir, "web", "ns", "app", at).unwrap();
        assert_eq!(
            layout.relative(&f1),
            "u-1/checkpoint-web_ns-app-2026-11-30T07:00:00Z.tar"
        );
        assert_eq!(
            p1.file_name().unwrap(),
            ".checkpoint-web_ns-app-2026-11-30T07:00:00Z.tar.partial"
        );
        // A partial archive is not an archive.
        fs::write(&p1, b"half").unwrap();
        assert_eq!(Layout::find_archive(&dir, "web", "ns", "app"), None);
        let (f2, _) = Layout::new_archive_paths(&dir, "web", "ns", "app", at).unwrap();
        assert!(f2.to_string_lossy().ends_with("07:00:00Z-2.tar"));
        fs::write(&f1, b"one").unwrap();
        fs::write(&f2, b"two").unwrap();
        // `app-2`'s archive is not `app`'s.
        let (other, _) = Layout::new_archive_paths(&dir, "web", "ns", "app-2", at).unwrap();
        fs::write(&other, b"other").unwrap();
        assert_eq!(Layout::find_archive(&dir, "web", "ns", "app"), Some(f2));
        assert_eq!(
            Layout::find_archive(&dir, "web", "ns", "app-2"),
            Some(other)
        );
        assert_eq!(Layout::find_archive(&dir, "web", "ns", "db"), None);

        Layout::mark(&dir, "ns/web-1").unwrap();
        Layout::mark(&dir, "ns/web-1").unwrap();
        assert!(Layout::is_marked(&dir));
        assert_eq!(fs::read_to_string(dir.join(MARKER)).unwrap(), "ns/web-1\n");
        assert_eq!(
            fs::metadata(dir.join(MARKER)).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // The marker is no archive: not counted.
        let removed = layout.remove_object_dir("u-1").unwrap();
        assert_eq!(
            removed,
            Removed {
                files: 4,
                bytes: 4 + 3 + 3 + 5
            }
        );
        assert!(!dir.exists());
        assert_eq!(layout.remove_object_dir("u-1").unwrap(), Removed::default());
    }

    #[test]
    fn uuids_only_for_orphans() {
        assert!(is_uuid("37481bae-d3b7-4e5a-8ece-ec5eab5315ea"));
        for bad in [
            "u-1",
            "37481BAE-d3b7-4e5a-8ece-ec5eab5315ea",
            "37481bae-d3b7-4e5a-8ece-ec5eab5315e",
            "37481bae-d3b7-4e5a-8ece-ec5eab5315eaa",
            "37481bae_d3b7-4e5a-8ece-ec5eab5315ea",
            "checkpoint-web_ns-app-2026-11-30T07:00:00Z.tar",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }

    #[test]
    fn never_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        fs::write(elsewhere.path().join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), tmp.path().join("u-2")).unwrap();
        let layout = Layout::new(tmp.path());
        assert!(layout.remove_object_dir("u-2").is_err());
        assert!(layout.create_object_dir("u-2").is_err());
        assert!(elsewhere.path().join("keep").exists());
    }

    #[test]
    fn digest_matches_sha256() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            digest(&p).unwrap(),
            (
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_owned()
            )
        );
    }
}
