//! A private containerd 2.x for tests: its own config, root, state and socket in one
//! directory, the test images imported, and everything stopped and cleaned on drop.
//!
//! The configuration is the one `ENVIRONMENT.md` found necessary on these machines:
//! `restrict_oom_score_adj = true` (no CAP_SYS_RESOURCE), runc with its own `Root` and
//! cgroupfs, NRI off, the streaming server on an ephemeral loopback port, TCP and metrics
//! off, the sandbox image pinned (nothing can be pulled), CRIU on `PATH`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cri::{self, Cri, PodRunner};
use crate::prereq::{self, Runtime};

/// What failed starting or stopping containerd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Prerequisite(#[from] prereq::Error),
    #[error("failed to create the temporary directory for containerd")]
    TempDir(#[source] std::io::Error),
    #[error("failed to create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("socket path {0} is longer than 107 bytes: choose a shorter directory")]
    SocketPathTooLong(PathBuf),
    #[error("failed to start {binary}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("containerd exited during startup ({status}); last lines of {log}:\n{tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "containerd did not answer CRI Version within {timeout:?} (last error: {last}); last lines of {log}:\n{tail}"
    )]
    StartupTimeout {
        timeout: Duration,
        last: String,
        log: PathBuf,
        tail: String,
    },
    #[error("failed to run ctr")]
    RunCtr(#[source] std::io::Error),
    #[error("`ctr images import {image}` failed: {stderr}")]
    Import { image: PathBuf, stderr: String },
    #[error(transparent)]
    Cri(#[from] cri::Error),
    #[error("cleanup left problems: {}", .0.join("; "))]
    Cleanup(Vec<String>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to start containerd.
#[derive(Debug, Clone)]
pub struct Options {
    /// Use this directory and keep it afterwards (for a long-running local stack).
    /// `None`: a fresh temporary directory, removed on drop.
    pub dir: Option<PathBuf>,
    /// Where `app.tar` and `pause.tar` are; default [`prereq::images_dir`].
    pub images_dir: Option<PathBuf>,
    /// Import the test images after start (default true).
    pub import_images: bool,
    /// How long to wait for the socket and the CRI `Version` call.
    pub startup_timeout: Duration,
    /// containerd's `--log-level`.
    pub log_level: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dir: None,
            images_dir: None,
            import_images: true,
            startup_timeout: Duration::from_secs(30),
            log_level: "info".into(),
        }
    }
}

impl Options {
    /// Start in `dir` and keep it.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            ..Self::default()
        }
    }
}

/// A running private containerd. Dropping it removes the pod sandboxes, stops containerd
/// and its shims, unmounts what is left under its directory, removes the empty cgroup
/// directories under [`Containerd::cgroup_parent`] and (for a temporary directory) the
/// directory itself.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    temp: Option<tempfile::TempDir>,
    socket: PathBuf,
    cgroup_parent: String,
    child: Option<Child>,
    runtime: Runtime,
}

/// Name of the file in the directory that holds the cgroup parent for pods.
pub const CGROUP_PARENT_FILE: &str = "cgroup-parent";
/// Name of the socket in the directory.
pub const SOCKET_FILE: &str = "containerd.sock";

impl Containerd {
    /// Checks the prerequisites, writes the config, starts containerd, waits for CRI
    /// `Version`, imports the test images.
    pub async fn start(opts: Options) -> Result<Self> {
        let runtime = prereq::check_runtime()?;
        let images = if opts.import_images {
            let dir = opts.images_dir.clone().unwrap_or_else(prereq::images_dir);
            Some(prereq::check_images(&dir)?)
        } else {
            None
        };
        let (dir, temp) = match &opts.dir {
            Some(dir) => {
                create_dir(dir)?;
                let dir = std::fs::canonicalize(dir).map_err(|source| Error::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("kcr-containerd-")
                    .tempdir()
                    .map_err(Error::TempDir)?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let socket = dir.join(SOCKET_FILE);
        // sun_path is 108 bytes; containerd also listens on SOCKET.ttrpc.
        if socket.as_os_str().len() + ".ttrpc".len() > 107 {
            return Err(Error::SocketPathTooLong(socket));
        }
        let cgroup_parent = format!(
            "/kcr-test-{:08x}",
            fnv32(dir.as_os_str().as_encoded_bytes())
        );
        for sub in ["root", "state", "cni/bin", "cni/conf", "opt"] {
            create_dir(&dir.join(sub))?;
        }
        write(&dir.join(CGROUP_PARENT_FILE), &cgroup_parent)?;
        let config = dir.join("config.toml");
        write(&config, &render_config(&dir, &socket))?;
        // A stale socket from a previous run would look like readiness.
        let _ = std::fs::remove_file(&socket);

        let log = dir.join("containerd.log");
        let log_file = File::create(&log).map_err(|source| Error::Write {
            path: log.clone(),
            source,
        })?;
        let log_err = log_file.try_clone().map_err(|source| Error::Write {
            path: log.clone(),
            source,
        })?;
        let child = Command::new(&runtime.containerd)
            .arg("--config")
            .arg(&config)
            .arg("--log-level")
            .arg(&opts.log_level)
            .env("PATH", prereq::harness_path())
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|source| Error::Spawn {
                binary: runtime.containerd.clone(),
                source,
            })?;
        tracing::info!(pid = child.id(), socket = %socket.display(), "started containerd");
        let mut me = Self {
            dir,
            temp,
            socket,
            cgroup_parent,
            child: Some(child),
            runtime,
        };
        me.wait_ready(opts.startup_timeout).await?;
        if let Some(images) = images {
            for image in &images {
                me.import(image).await?;
            }
        }
        Ok(me)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("socket not created yet");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(Error::Exited {
                    status: status.to_string(),
                    log: self.log_path(),
                    tail: self.log_tail(30),
                });
            }
            if self.socket.exists() {
                match Cri::connect(&self.socket).await {
                    Ok(mut cri) => match cri.version().await {
                        Ok(v) => {
                            tracing::info!(runtime = %v.runtime_name, version = %v.runtime_version, "containerd ready");
                            return Ok(());
                        }
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::StartupTimeout {
                    timeout,
                    last,
                    log: self.log_path(),
                    tail: self.log_tail(30),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `ctr --address SOCK -n k8s.io images import FILE`.
    pub async fn import(&self, image: &Path) -> Result<()> {
        let out = tokio::process::Command::new(&self.runtime.ctr)
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", crate::CRI_NAMESPACE, "images", "import"])
            .arg(image)
            .env("PATH", prereq::harness_path())
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(Error::RunCtr)?;
        if !out.status.success() {
            return Err(Error::Import {
                image: image.to_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// The containerd gRPC (and CRI) socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The directory holding config, root, state, socket and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// cgroupfs parent for pod sandboxes; its empty directories are removed on drop.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// containerd's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// containerd's exit status if it has exited on its own (a crash).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The binaries found by the prerequisite check.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The last `lines` lines of containerd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(file) = File::open(self.log_path()) else {
            return String::new();
        };
        let all: Vec<String> = BufReader::new(file).lines().map_while(|l| l.ok()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A CRI client on this containerd.
    pub async fn cri(&self) -> Result<Cri> {
        Ok(Cri::connect(&self.socket).await?)
    }

    /// A [`PodRunner`] using this containerd and its cgroup parent.
    pub async fn pod_runner(&self) -> Result<PodRunner> {
        Ok(PodRunner::new(
            self.cri().await?,
            self.cgroup_parent.clone(),
        ))
    }

    /// Stops everything now and reports what could not be cleaned (drop does the same
    /// and only logs).
    pub fn stop(mut self) -> Result<()> {
        let problems = self.cleanup();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Cleanup(problems))
        }
    }

    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let state = self.dir.join("state");
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None))
                && let Err(e) = remove_all_pods(&self.socket)
            {
                problems.push(format!("removing pod sandboxes: {e}"));
            }
            stop_child(&mut child, Duration::from_secs(10), &mut problems);
        }
        // Shims (and their containers) outlive containerd.
        let shims = find_shims(&state);
        runc_delete_all(&self.runtime.runc, &state.join("runc"), &mut problems);
        for shim in &shims {
            if let Some(pid) = rustix::process::Pid::from_raw(shim.pid)
                && rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_ok()
            {
                tracing::debug!(pid = shim.pid, "killed shim");
            }
            if let Some(sock) = &shim.socket {
                let _ = std::fs::remove_file(sock);
            }
        }
        if !shims.is_empty() {
            // Let the kernel reap the killed shims before unmounting.
            std::thread::sleep(Duration::from_millis(100));
        }
        unmount_under(&self.dir, &mut problems);
        remove_cgroups(&self.cgroup_parent, &mut problems);
        if let Some(temp) = self.temp.take() {
            let path = temp.path().to_owned();
            if let Err(e) = temp.close() {
                problems.push(format!("removing {}: {e}", path.display()));
            }
        } else {
            let _ = std::fs::remove_file(&self.socket);
            let _ = std::fs::remove_file(self.dir.join(format!("{SOCKET_FILE}.ttrpc")));
        }
        problems
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for problem in self.cleanup() {
            tracing::warn!(%problem, "containerd cleanup");
            eprintln!("kcr-testkit: containerd cleanup: {problem}");
        }
    }
}

/// The containerd config (version 3, containerd 2.x) for a private instance in `dir`.
pub fn render_config(dir: &Path, socket: &Path) -> String {
    let q = |p: PathBuf| toml_str(&p.to_string_lossy());
    let root = q(dir.join("root"));
    let state = q(dir.join("state"));
    let runc_root = q(dir.join("state/runc"));
    let cni_bin = q(dir.join("cni/bin"));
    let cni_conf = q(dir.join("cni/conf"));
    let opt = q(dir.join("opt"));
    let socket = toml_str(&socket.to_string_lossy());
    let pause = toml_str(crate::PAUSE_IMAGE);
    format!(
        r#"# Written by kcr-testkit: a private containerd for tests.
version = 3
root = {root}
state = {state}
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = {socket}
  tcp_address = ""

[metrics]
  address = ""

[plugins]
  [plugins.'io.containerd.cri.v1.runtime']
    # Required here: without CAP_SYS_RESOURCE every RunPodSandbox fails otherwise.
    restrict_oom_score_adj = true
    enable_cdi = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          Root = {runc_root}
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [{cni_bin}]
      conf_dir = {cni_conf}
  [plugins.'io.containerd.cri.v1.images']
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = {pause}
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.internal.v1.opt']
    path = {opt}
"#
    )
}

/// A TOML basic string (JSON string escapes are valid TOML escapes).
fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| Error::CreateDir {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// Removes all pod sandboxes through CRI. Runs on its own thread with its own runtime,
/// so it works from `Drop` inside or outside a tokio runtime.
fn remove_all_pods(socket: &Path) -> Result<usize, String> {
    let socket = socket.to_owned();
    let worker = std::thread::spawn(move || -> Result<usize, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let work = async {
                let mut cri = Cri::connect(&socket).await?;
                cri.remove_all_pods().await
            };
            match tokio::time::timeout(Duration::from_secs(60), work).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("timed out after 60s".to_owned()),
            }
        })
    });
    worker
        .join()
        .map_err(|_| "cleanup thread panicked".to_owned())?
}

fn stop_child(child: &mut Child, grace: Duration, problems: &mut Vec<String>) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    problems.push(format!(
        "containerd (pid {}) ignored SIGTERM for {grace:?}; killed",
        child.id()
    ));
    let _ = child.kill();
    let _ = child.wait();
}

#[derive(Debug)]
struct Shim {
    pid: i32,
    socket: Option<PathBuf>,
}

/// Shims recorded by containerd: `<state>/io.containerd.runtime.v2.task/<ns>/<id>/shim.pid`
/// (and `address`, the shim's socket).
fn find_shims(state: &Path) -> Vec<Shim> {
    let mut out = Vec::new();
    let tasks = state.join("io.containerd.runtime.v2.task");
    let Ok(namespaces) = std::fs::read_dir(tasks) else {
        return out;
    };
    for ns in namespaces.flatten() {
        let Ok(bundles) = std::fs::read_dir(ns.path()) else {
            continue;
        };
        for bundle in bundles.flatten() {
            let pid = std::fs::read_to_string(bundle.path().join("shim.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            let socket = std::fs::read_to_string(bundle.path().join("address"))
                .ok()
                .and_then(|a| a.trim().strip_prefix("unix://").map(PathBuf::from));
            if let Some(pid) = pid.filter(|p| *p > 1) {
                out.push(Shim { pid, socket });
            }
        }
    }
    out
}

/// `runc --root ROOT delete --force` for every container runc still knows about.
fn runc_delete_all(runc: &Path, root: &Path, problems: &mut Vec<String>) {
    let Ok(namespaces) = std::fs::read_dir(root) else {
        return;
    };
    for ns in namespaces.flatten() {
        let ns_root = ns.path();
        let Ok(out) = Command::new(runc)
            .arg("--root")
            .arg(&ns_root)
            .args(["list", "-q"])
            .output()
        else {
            continue;
        };
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let status = Command::new(runc)
                .arg("--root")
                .arg(&ns_root)
                .args(["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match status {
                Ok(s) if s.success() => tracing::debug!(%id, "runc delete --force"),
                _ => problems.push(format!("runc delete --force {id} failed")),
            }
        }
    }
}

/// Mount points at or under `dir` from `/proc/self/mountinfo`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    out.dedup();
    out
}

fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unmount_under(dir: &Path, problems: &mut Vec<String>) {
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            if let Err(e) = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH) {
                tracing::debug!(mount = %m.display(), %e, "unmount");
            }
        }
    }
    for m in mounts_under(dir) {
        problems.push(format!("still mounted: {}", m.display()));
    }
}

/// Removes the (empty) cgroup directories under `parent` in every hierarchy, deepest first.
fn remove_cgroups(parent: &str, problems: &mut Vec<String>) {
    let rel = parent.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    let base = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![base.join(rel)];
    if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            candidates.push(e.path().join(rel));
        }
    }
    for dir in candidates {
        if dir.is_dir()
            && let Err(e) = rmdir_tree(&dir)
        {
            problems.push(format!("removing cgroup {}: {e}", dir.display()));
        }
    }
}

fn rmdir_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            rmdir_tree(&entry.path())?;
        }
    }
    // A cgroup directory with processes cannot be removed: retry briefly while they exit.
    let mut last = Ok(());
    for _ in 0..20 {
        last = std::fs::remove_dir(dir);
        if last.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_what_this_machine_needs() {
        let cfg = render_config(Path::new("/tmp/x"), Path::new("/tmp/x/containerd.sock"));
        for needle in [
            "version = 3",
            "restrict_oom_score_adj = true",
            r#"Root = "/tmp/x/state/runc""#,
            "SystemdCgroup = false",
            r#"stream_server_port = "0""#,
            r#"tcp_address = """#,
            r#"sandbox = "localhost/kcr-test/pause:v1""#,
            r#"address = "/tmp/x/containerd.sock""#,
            "io.containerd.nri.v1.nri",
        ] {
            assert!(cfg.contains(needle), "missing {needle:?} in\n{cfg}");
        }
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn cgroup_parent_is_stable_per_dir() {
        assert_eq!(fnv32(b"/a"), fnv32(b"/a"));
        assert_ne!(fnv32(b"/a"), fnv32(b"/b"));
    }
}
