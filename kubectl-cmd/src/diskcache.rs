//! kubectl's disk cache of discovery documents, shared with kubectl:
//! `$KUBECACHEDIR` (default `~/.kube/cache`) `/discovery/<host_port>/`
//! holds `servergroups.json` (`GET /apis`) and
//! `<group>/<version>/serverresources.json` (`v1/serverresources.json` for
//! `GET /api/v1`), each trusted for [`TTL`] after it was written (the file's
//! mtime), as upstream's `CachedDiscoveryClient`
//! (`k8s.io/client-go/discovery/cached/disk/cached_discovery.go`, with the
//! directory of `computeDiscoverCacheDir` and the 6 h TTL of
//! `k8s.io/cli-runtime/pkg/genericclioptions/config_flags.go`).
//!
//! Like upstream: only non-empty documents are written (a failed or empty
//! answer is never cached); a file is written whole to a temporary name
//! and renamed; [`DiskCache::invalidate`] makes every later read ignore the
//! files this process did not write itself; [`DiskCache::fresh`] says
//! whether everything read so far came from the server in this run (so a
//! "not found" seen through the cache is worth one retry after
//! invalidating, and one seen fresh is not).
//!
//! Unlike upstream, the files are 0600 and the directories 0700 (kubectl
//! uses 0660 and 0750): discovery documents name what a cluster serves,
//! and nothing else needs to read them. A cache that cannot be read or
//! written is never an error: the document is fetched from the server.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long a cached document is trusted: kubectl's.
pub const TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// Mode of the cache files.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directories the cache creates.
pub const DIR_MODE: u32 = 0o700;

/// The file holding `GET /apis`.
pub const SERVER_GROUPS: &str = "servergroups.json";

/// The file holding the resources of `group_version` (`v1` for `/api/v1`).
pub fn server_resources(group_version: &str) -> PathBuf {
    Path::new(group_version).join("serverresources.json")
}

/// `$KUBECACHEDIR`, else `$HOME/.kube/cache` (cli-runtime's
/// `getDefaultCacheDir`); `None` without either.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KUBECACHEDIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(Path::new(&home).join(".kube").join("cache"))
}

/// cli-runtime's `computeDiscoverCacheDir`: the host with `https://` and
/// `http://` removed once each, every character outside `[\w/.()]`
/// replaced with `_` (`https://127.0.0.1:6443` → `127.0.0.1_6443`).
pub fn discovery_dir(parent: &Path, host: &str) -> PathBuf {
    let schemeless = host.replacen("https://", "", 1).replacen("http://", "", 1);
    let safe: String = schemeless
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect();
    parent.join(safe.trim_start_matches('/'))
}

#[derive(Debug)]
struct State {
    /// Files written by this process (still trusted after invalidation).
    ours: HashSet<PathBuf>,
    invalidated: bool,
    fresh: bool,
}

/// One server's discovery cache directory.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    ttl: Duration,
    state: Mutex<State>,
}

impl DiskCache {
    /// The cache of the server at `host` (the kubeconfig's `server` URL)
    /// under `parent/discovery/`.
    pub fn for_server(parent: &Path, host: &str) -> Self {
        Self::new(discovery_dir(&parent.join("discovery"), host), TTL)
    }

    pub fn new(dir: PathBuf, ttl: Duration) -> Self {
        Self {
            dir,
            ttl,
            state: Mutex::new(State {
                ours: HashSet::new(),
                invalidated: false,
                fresh: true,
            }),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached document at `relative`, if present, younger than the TTL
    /// and not invalidated.
    pub fn get(&self, relative: &Path) -> Option<Vec<u8>> {
        let path = self.dir.join(relative);
        let ours = {
            let state = self.state();
            let ours = state.ours.contains(&path);
            if state.invalidated && !ours {
                return None;
            }
            ours
        };
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        let age = SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default();
        if age > self.ttl {
            tracing::debug!(path = %path.display(), "cached discovery document expired");
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        let mut state = self.state();
        state.fresh = state.fresh && ours;
        tracing::debug!(path = %path.display(), "cached discovery document");
        Some(bytes)
    }

    /// Keep `bytes` (a non-empty document just read from the server) at
    /// `relative`. Failures are logged, never returned.
    pub fn put(&self, relative: &Path, bytes: &[u8]) {
        let path = self.dir.join(relative);
        if let Err(e) = self.write(&path, bytes) {
            tracing::debug!(path = %path.display(), error = %e, "failed to write the discovery cache");
            return;
        }
        self.state().ours.insert(path);
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let parent = path
            .parent()
            .ok_or_else(|| std::io::Error::other("no parent directory"))?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(parent)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = parent.join(format!(".{name}.{}", std::process::id()));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(FILE_MODE)
                .open(&temporary)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }

    /// Whether every document read so far came from the server in this run.
    pub fn fresh(&self) -> bool {
        self.state().fresh
    }

    /// From now on ignore every file this process did not write itself.
    pub fn invalidate(&self) {
        let mut state = self.state();
        state.ours.clear();
        state.fresh = true;
        state.invalidated = true;
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn directory_names_are_kubectls() {
        let p = Path::new("/c");
        // cli-runtime's TestComputeDiscoverCacheDir cases
        for (host, want) in [
            ("localhost:8443", "/c/localhost_8443"),
            ("localhost:8443/prefix", "/c/localhost_8443/prefix"),
            ("mine.example.org:8443", "/c/mine.example.org_8443"),
            ("127.0.0.1:8443", "/c/127.0.0.1_8443"),
            ("::1:8443", "/c/__1_8443"),
            ("https://127.0.0.1:6443", "/c/127.0.0.1_6443"),
            ("http://[::1]:8080", "/c/___1__8080"),
        ] {
            assert_eq!(discovery_dir(p, host), Path::new(want), "{host}");
        }
    }

    #[test]
    fn written_documents_are_read_back_private() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::for_server(dir.path(), "https://10.0.0.1:6443");
        let rel = server_resources("checkpoint.kcr.dev/v1alpha1");
        assert_eq!(cache.get(&rel), None);
        cache.put(&rel, b"{}");
        assert_eq!(cache.get(&rel).as_deref(), Some(&b"{}"[..]));
        assert!(cache.fresh(), "our own file keeps the cache fresh");

        let file = dir
            .path()
            .join("discovery/10.0.0.1_6443/checkpoint.kcr.dev/v1alpha1/serverresources.json");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("discovery")), 0o700);
        // no temporary file left
        assert_eq!(
            std::fs::read_dir(file.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn another_process_files_make_it_stale_until_invalidated() {
        let dir = tempfile::tempdir().unwrap();
        let writer = DiskCache::for_server(dir.path(), "https://h:1");
        writer.put(Path::new(SERVER_GROUPS), b"groups");

        let reader = DiskCache::for_server(dir.path(), "https://h:1");
        assert_eq!(
            reader.get(Path::new(SERVER_GROUPS)).as_deref(),
            Some(&b"groups"[..])
        );
        assert!(!reader.fresh(), "read from a file of another run");
        reader.invalidate();
        assert!(reader.fresh());
        assert_eq!(reader.get(Path::new(SERVER_GROUPS)), None);
        reader.put(Path::new(SERVER_GROUPS), b"new");
        assert_eq!(
            reader.get(Path::new(SERVER_GROUPS)).as_deref(),
            Some(&b"new"[..])
        );
        assert!(reader.fresh());
    }

    #[test]
    fn expired_documents_are_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(dir.path().to_path_buf(), Duration::ZERO);
        cache.put(Path::new(SERVER_GROUPS), b"x");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(cache.get(Path::new(SERVER_GROUPS)), None);
    }
}
