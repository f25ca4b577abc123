//! `kubectl checkpoint download NAME [-c CONTAINER] [-f FILE | -f -]`: the
//! archive of a PodCheckpoint, from the node that wrote it, through
//! `podcheckpoints/archive` of the aggregated group ([`api_types::download`]).
//!
//! The archive is read in ranges (`--range-size`), several at once
//! (`--parallel`), each well inside kube-apiserver's 60 s request timeout.
//! A range that breaks off is asked for again from the byte it reached
//! (`--retries` times in a row for each range; completed bytes are kept). A
//! file is written 0600 under a temporary name in its directory
//! (`.NAME.PID.download`), its sha256 checked against the PodCheckpoint's
//! status, then renamed: the final name only ever holds a whole, verified
//! archive. `-f -` writes the archive to stdout in order (its sha256 is
//! checked at the end). A progress bar with rate and ETA is drawn on stderr
//! when it is a terminal.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use api_types::PodCheckpoint;
use clap::{ArgAction, CommandFactory, Parser};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::client::render_client_error;
use crate::client::{ArchiveSource, ClientError, KubeClient};
use crate::config::ConfigFlags;

/// The subcommand's name.
pub const NAME: &str = "download";

pub const USAGE: &str = "kubectl checkpoint download NAME [-c CONTAINER] [-f FILE | -f -] [flags]";

pub const SHORT: &str = "Download the archive of a PodCheckpoint from its node.";

pub const LONG: &str = "Download the archive of a PodCheckpoint from its node.

 The archive is read through the checkpoint extension (podcheckpoints/archive in subresources.checkpoint.kcr.dev),
which streams it from the checkpoint agent on the node that wrote it. It needs get on podcheckpoints (group
checkpoint.kcr.dev) and on podcheckpoints/archive (group subresources.checkpoint.kcr.dev): the ClusterRole
checkpoint-downloader grants both.

 The archive holds all of the container's memory, secrets included: the file is written readable by its owner only
(0600), under a temporary name in the same directory, and renamed once it is complete and its sha256 matches the
PodCheckpoint's status. An interrupted range is resumed from where it stopped.";

pub const EXAMPLES: &str =
    "  # Download the archive of the only container of PodCheckpoint web-x7k2p to its own file name
  kubectl checkpoint download web-x7k2p
  
  # Download the archive of container app to app.tar
  kubectl checkpoint download web-x7k2p -c app -f app.tar
  
  # Write the archive to stdout and inspect it elsewhere
  kubectl checkpoint download web-x7k2p -f - | ssh host 'cat > web.tar'";

/// A usage error's hint.
pub const USAGE_HINT: &str = "See 'kubectl checkpoint download -h' for help and examples";

/// How long a range may go without a byte before it counts as broken off.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// `kubectl checkpoint download`'s flags.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "kubectl-checkpoint-download",
    bin_name = "kubectl checkpoint download",
    about = SHORT,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
pub struct DownloadArgs {
    /// NAME of the PodCheckpoint
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Container whose archive to download. If omitted, the only container with an archive.
    #[arg(short = 'c', long, verbatim_doc_comment)]
    pub container: Option<String>,
    /// File to write the archive to; - writes it to stdout. If omitted, the archive's own file name in the current directory.
    #[arg(
        short = 'f',
        long,
        value_name = "FILE",
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    pub filename: Option<String>,
    /// Ranges of the archive to download at once.
    #[arg(long, default_value_t = 4, verbatim_doc_comment)]
    pub parallel: usize,
    /// Bytes of one range (like 16Mi, 1Gi or 4096); the server may cut a range shorter.
    #[arg(long, default_value = "16Mi", verbatim_doc_comment)]
    pub range_size: String,
    /// How many times in a row a range that fails (node agent or server unreachable, transfer cut) is asked for again before the download fails.
    #[arg(long, default_value_t = 5, verbatim_doc_comment)]
    pub retries: u32,
    #[command(flatten)]
    pub config: ConfigFlags,
    /// help for download
    #[arg(short = 'h', long, action = ArgAction::SetTrue, hide = true)]
    pub help: bool,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{0}\n{USAGE_HINT}")]
    Usage(String),
    #[error("failed to create the API client")]
    Client(#[source] ClientError),
    /// Reading the PodCheckpoint failed.
    #[error("{}", render_client_error(.0))]
    Read(ClientError),
    #[error("podcheckpoint {name} is not Ready ({why}): it has no archive yet")]
    NotReady { name: String, why: String },
    #[error("{0}")]
    Container(String),
    /// The server refused a range (not worth asking again).
    #[error("failed to download the archive of container {container} of podcheckpoint {name}: {}", render_client_error(.source))]
    Refused {
        container: String,
        name: String,
        source: ClientError,
    },
    /// A range kept failing.
    #[error(
        "failed to download the archive of container {container} of podcheckpoint {name} from node {node}: {attempts} attempts failed, the last: {last}"
    )]
    Transfer {
        container: String,
        name: String,
        node: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "the archive downloaded from node {node} does not match the PodCheckpoint's status: sha256 {got}, want {want}{}",
        if *.to_stdout { " (the bytes were written to stdout)" } else { "; nothing was saved" }
    )]
    Digest {
        node: String,
        got: String,
        want: String,
        to_stdout: bool,
    },
    #[error("{what} {}: {source}", .path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to write the archive to stdout: {0}")]
    Stdout(#[source] io::Error),
}

/// What is downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub namespace: String,
    pub name: String,
    pub container: String,
    pub node: String,
    /// The status's path, relative to the node's checkpoint directory.
    pub archive: String,
    pub size: u64,
    pub sha256: String,
}

/// Where the archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// How a download runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub parallel: usize,
    pub range_size: u64,
    pub retries: u32,
    /// The first wait before asking again (doubling, at most 5 s).
    pub backoff: Duration,
    pub progress: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            parallel: 4,
            range_size: 16 * 1024 * 1024,
            retries: 5,
            backoff: Duration::from_millis(500),
            progress: false,
        }
    }
}

/// `16Mi`, `1Gi`, `64Ki`, `4096`: bytes.
pub fn parse_size(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let (digits, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => raw.split_at(i),
        None => (raw, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).filter(|n| *n > 0)
}

/// The arguments for `download` (program name first) when `argv` asks for it.
pub fn subcommand_args(argv: &[OsString]) -> Option<Vec<OsString>> {
    crate::cmd::subcommand_named(argv, NAME)
}

/// Run `kubectl checkpoint download` with `argv` ([`subcommand_args`]'s result).
pub async fn run(
    argv: Vec<OsString>,
    out: &mut impl Write,
    notices: &mut impl Write,
) -> Result<(), DownloadError> {
    let last = argv
        .last()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = DownloadArgs::try_parse_from(argv).map_err(|e| usage(e, &last))?;
    if args.help {
        return out
            .write_all(help_text().as_bytes())
            .map_err(DownloadError::Stdout);
    }
    let name = match args.names.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(DownloadError::Usage(
                "expected 'checkpoint download NAME'.\nNAME (a PodCheckpoint) is a required argument for the download command".into(),
            ));
        }
        more => {
            return Err(DownloadError::Usage(format!(
                "exactly one NAME is allowed, got {}",
                more.len()
            )));
        }
    };
    let range_size = parse_size(&args.range_size).ok_or_else(|| {
        DownloadError::Usage(format!(
            "invalid argument {:?} for \"--range-size\" flag: a positive number of bytes, like 16Mi, 1Gi or 4096",
            args.range_size
        ))
    })?;
    if args.parallel == 0 || args.parallel > 64 {
        return Err(DownloadError::Usage(format!(
            "--parallel must be between 1 and 64, got {}",
            args.parallel
        )));
    }
    let request_timeout = args
        .config
        .request_timeout()
        .map_err(|e| DownloadError::Usage(e.to_string()))?;
    let loaded = args
        .config
        .load()
        .await
        .map_err(|e| DownloadError::Usage(e.to_string()))?;
    let client = KubeClient::new(loaded.config, request_timeout).map_err(DownloadError::Client)?;
    let target = match args.filename.as_deref() {
        Some("-") => Target::Stdout,
        Some(f) => Target::File(PathBuf::from(f)),
        None => Target::File(PathBuf::new()),
    };
    let settings = Settings {
        parallel: args.parallel,
        range_size,
        retries: args.retries,
        progress: crate::spinner::stderr_is_terminal(),
        ..Settings::default()
    };
    download(
        &client,
        &loaded.namespace,
        &name,
        args.container.as_deref(),
        target,
        &settings,
        out,
        notices,
    )
    .await
}

/// Downloads `name`'s archive of `container` to `target` (an empty file
/// path: the archive's own name); prints where it went to `out` (unless the
/// archive itself goes there).
#[allow(clippy::too_many_arguments)]
pub async fn download(
    source: &impl ArchiveSource,
    namespace: &str,
    name: &str,
    container: Option<&str>,
    target: Target,
    settings: &Settings,
    out: &mut impl Write,
    notices: &mut impl Write,
) -> Result<(), DownloadError> {
    let pc = source
        .get_pod_checkpoint(namespace, name)
        .await
        .map_err(DownloadError::Read)?;
    download_object(
        source, &pc, namespace, name, container, target, settings, out, notices,
    )
    .await
}

/// [`download`] of a PodCheckpoint already read (`kubectl checkpoint POD
/// --download FILE` has it from its wait).
#[allow(clippy::too_many_arguments)]
pub async fn download_object(
    source: &impl ArchiveSource,
    pc: &PodCheckpoint,
    namespace: &str,
    name: &str,
    container: Option<&str>,
    target: Target,
    settings: &Settings,
    out: &mut impl Write,
    notices: &mut impl Write,
) -> Result<(), DownloadError> {
    let plan = plan(pc, namespace, name, container)?;
    if container.is_none() {
        let _ = writeln!(notices, "Defaulted container \"{}\"", plan.container);
    }
    tracing::info!(podcheckpoint = %name, container = %plan.container, node = %plan.node, size = plan.size, "downloading");
    let bar = progress_bar(settings.progress, plan.size);
    let result = match target {
        Target::Stdout => to_writer(source, &plan, settings, &bar, out).await,
        Target::File(path) => {
            let path = if path.as_os_str().is_empty() {
                PathBuf::from(file_name_of(&plan.archive))
            } else {
                path
            };
            let r = to_file(source, &plan, settings, &bar, &path).await;
            if r.is_ok() {
                bar.finish_and_clear();
                writeln!(
                    out,
                    "podcheckpoint/{name} container {}: archive saved to {} ({} bytes, sha256 {})",
                    plan.container,
                    path.display(),
                    plan.size,
                    plan.sha256
                )
                .map_err(DownloadError::Stdout)?;
            }
            r
        }
    };
    bar.finish_and_clear();
    result
}

/// The archive's file name (the last part of the status's path).
fn file_name_of(archive: &str) -> &str {
    archive.rsplit('/').next().unwrap_or(archive)
}

/// What to download from a PodCheckpoint: Ready, the container's archive.
pub fn plan(
    pc: &PodCheckpoint,
    namespace: &str,
    name: &str,
    container: Option<&str>,
) -> Result<Plan, DownloadError> {
    if !pc.is_ready() {
        let why = pc
            .ready_condition()
            .map(|c| {
                if c.message.is_empty() {
                    c.reason.clone()
                } else {
                    format!("{}: {}", c.reason, c.message)
                }
            })
            .unwrap_or_else(|| "not claimed by a node agent yet".into());
        return Err(DownloadError::NotReady {
            name: name.to_owned(),
            why,
        });
    }
    let status = pc.status.clone().unwrap_or_default();
    let with_archive: Vec<_> = status
        .checkpointed_containers
        .iter()
        .filter_map(|c| c.archive.as_ref().map(|a| (c.name.as_str(), a)))
        .collect();
    let names = with_archive
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(" ");
    let (container, archive) = match container {
        Some(c) => with_archive.iter().find(|(n, _)| *n == c).ok_or_else(|| {
            DownloadError::Container(format!(
                "container {c} has no archive in podcheckpoint {name}: choose one of [{names}]"
            ))
        })?,
        None => match with_archive.as_slice() {
            [one] => one,
            _ => {
                return Err(DownloadError::Container(format!(
                    "podcheckpoint {name} has archives of several containers: choose one of [{names}] with -c"
                )));
            }
        },
    };
    Ok(Plan {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        container: (*container).to_owned(),
        node: status.node_name.clone().unwrap_or_default(),
        archive: archive.path.clone(),
        size: u64::try_from(archive.size_bytes).unwrap_or_default(),
        sha256: archive.sha256.to_ascii_lowercase(),
    })
}

fn progress_bar(enabled: bool, size: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec}, ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// The ranges `[start, end)` covering `size` bytes.
pub fn ranges(size: u64, range_size: u64) -> Vec<(u64, u64)> {
    let step = range_size.max(1);
    let mut out = Vec::new();
    let mut at = 0;
    while at < size {
        let end = at.saturating_add(step).min(size);
        out.push((at, end));
        at = end;
    }
    out
}

/// Whether asking again may help: the server or the node agent could not be
/// reached, answered 5xx, or the transfer broke off.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Server(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        ClientError::ConnectionRefused { .. }
        | ClientError::Unreachable { .. }
        | ClientError::TimedOut(_)
        | ClientError::Body { .. } => true,
        ClientError::Decode { .. } | ClientError::Build(_) | ClientError::Request { .. } => false,
    }
}

/// Reads `[start, end)` into `sink(offset, bytes)`, asking again from the
/// byte reached when a request fails or breaks off.
async fn fetch_range(
    source: &impl ArchiveSource,
    plan: &Plan,
    (start, end): (u64, u64),
    settings: &Settings,
    bar: &ProgressBar,
    sink: &mut (dyn FnMut(u64, &[u8]) -> io::Result<()> + Send),
) -> Result<(), DownloadError> {
    let mut pos = start;
    let mut failures = 0u32;
    let mut last = String::new();
    let mut wait = settings.backoff;
    while pos < end {
        if failures > 0 {
            if failures > settings.retries {
                return Err(DownloadError::Transfer {
                    container: plan.container.clone(),
                    name: plan.name.clone(),
                    node: plan.node.clone(),
                    attempts: failures,
                    last,
                });
            }
            tracing::debug!(pos, failures, %last, "asking for the range again");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        let body = match source
            .read_range(&plan.namespace, &plan.name, &plan.container, pos, end - pos)
            .await
        {
            Ok(body) => body,
            Err(e) if retryable(&e) => {
                last = render_client_error(&e);
                failures += 1;
                continue;
            }
            Err(source) => {
                return Err(DownloadError::Refused {
                    container: plan.container.clone(),
                    name: plan.name.clone(),
                    source,
                });
            }
        };
        if body.start != pos || body.size != plan.size || body.end <= pos || body.end > end {
            return Err(DownloadError::Refused {
                container: plan.container.clone(),
                name: plan.name.clone(),
                source: ClientError::Body {
                    path: api_types::download::archive_path(&plan.namespace, &plan.name),
                    message: format!(
                        "asked for bytes {pos}-{} of {}, the server answered bytes {}-{}/{}",
                        end - 1,
                        plan.size,
                        body.start,
                        body.end.saturating_sub(1),
                        body.size
                    ),
                },
            });
        }
        let body_end = body.end;
        let mut chunks = body.chunks;
        loop {
            match tokio::time::timeout(IDLE_TIMEOUT, chunks.next()).await {
                Ok(Some(Ok(bytes))) => {
                    let room = usize::try_from(body_end - pos).unwrap_or(usize::MAX);
                    let take = &bytes[..bytes.len().min(room)];
                    if !take.is_empty() {
                        sink(pos, take).map_err(|e| DownloadError::Stdout(io::Error::other(e)))?;
                        pos += take.len() as u64;
                        bar.inc(take.len() as u64);
                        failures = 0;
                        wait = settings.backoff;
                    }
                }
                Ok(Some(Err(e))) => {
                    last = format!("the transfer broke off at byte {pos}: {e}");
                    break;
                }
                Ok(None) => {
                    if pos < body_end {
                        last = format!("the transfer ended early at byte {pos}");
                    }
                    break;
                }
                Err(_) => {
                    last = format!("no byte for {}s at byte {pos}", IDLE_TIMEOUT.as_secs());
                    break;
                }
            }
        }
        if pos < body_end {
            failures += 1;
        }
    }
    Ok(())
}

/// The download to a file: a temporary 0600 file beside it, ranges written
/// at their offsets, the digest checked, then the rename.
async fn to_file(
    source: &impl ArchiveSource,
    plan: &Plan,
    settings: &Settings,
    bar: &ProgressBar,
    path: &Path,
) -> Result<(), DownloadError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| DownloadError::Usage(format!("{} is not a file name", path.display())))?;
    let temp = dir.join(format!(".{base}.{}.download", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|source| DownloadError::File {
            what: "failed to create",
            path: temp.clone(),
            source,
        })?;
    let guard = RemoveOnDrop(Some(temp.clone()));
    file.set_len(plan.size)
        .map_err(|source| DownloadError::File {
            what: "failed to size",
            path: temp.clone(),
            source,
        })?;
    let parts = ranges(plan.size, settings.range_size);
    let follower = Follower::start(
        file.try_clone().map_err(|source| DownloadError::File {
            what: "failed to open",
            path: temp.clone(),
            source,
        })?,
        &parts,
        plan.size,
    );
    let file_ref = &file;
    let follower_ref = &follower;
    let write_error = std::sync::Mutex::new(None::<io::Error>);
    let write_error_ref = &write_error;
    let fetched = futures::stream::iter(parts.into_iter().enumerate())
        .map(|(index, range)| async move {
            let mut sink = |at: u64, bytes: &[u8]| {
                file_ref.write_all_at(bytes, at).inspect_err(|e| {
                    if let Ok(mut w) = write_error_ref.lock() {
                        *w = Some(io::Error::new(e.kind(), e.to_string()));
                    }
                })
            };
            fetch_range(source, plan, range, settings, bar, &mut sink).await?;
            follower_ref.completed(index);
            Ok(())
        })
        .buffer_unordered(settings.parallel.max(1))
        .try_collect::<Vec<()>>()
        .await
        .map_err(
            |e| match write_error.lock().ok().and_then(|mut w| w.take()) {
                Some(source) => DownloadError::File {
                    what: "failed to write",
                    path: temp.clone(),
                    source,
                },
                None => e,
            },
        );
    if let Err(e) = fetched {
        follower.abort().await;
        return Err(e);
    }
    let read_error = |source| DownloadError::File {
        what: "failed to read",
        path: temp.clone(),
        source,
    };
    let got = follower.finish().await.map_err(read_error)?;
    file.sync_all().map_err(|source| DownloadError::File {
        what: "failed to write",
        path: temp.clone(),
        source,
    })?;
    if got != plan.sha256 {
        return Err(DownloadError::Digest {
            node: plan.node.clone(),
            got,
            want: plan.sha256.clone(),
            to_stdout: false,
        });
    }
    fs::rename(&temp, path).map_err(|source| DownloadError::File {
        what: "failed to rename the download to",
        path: path.to_owned(),
        source,
    })?;
    guard.disarm();
    Ok(())
}

/// How much of a file the [`Follower`] hashes between two flushes to disk.
pub const FLUSH_EVERY: u64 = 64 * 1024 * 1024;

/// Follows a download to a file: hashes the bytes complete from the start
/// (read back from the page cache) and flushes them to disk (`fdatasync`)
/// every [`FLUSH_EVERY`] bytes, on a blocking thread, while the later ranges
/// are still in flight. When the last range lands only the tail is left to
/// hash and to write, instead of the whole file (a second pass of sha256 and
/// one fsync of the whole archive after the transfer).
struct Follower {
    shared: Arc<(Mutex<Completed>, Condvar)>,
    task: tokio::task::JoinHandle<io::Result<Option<String>>>,
}

/// Which ranges are written; the end of the complete prefix.
#[derive(Debug)]
struct Completed {
    ends: Vec<u64>,
    done: Vec<bool>,
    /// Ranges `..next` are all written.
    next: usize,
    aborted: bool,
}

impl Completed {
    fn prefix(&self) -> u64 {
        self.next
            .checked_sub(1)
            .and_then(|i| self.ends.get(i))
            .copied()
            .unwrap_or(0)
    }
}

impl Follower {
    /// Follows `file`, `size` bytes written in `ranges` (`[start, end)`, in order).
    fn start(file: File, ranges: &[(u64, u64)], size: u64) -> Self {
        let shared = Arc::new((
            Mutex::new(Completed {
                ends: ranges.iter().map(|r| r.1).collect(),
                done: vec![false; ranges.len()],
                next: 0,
                aborted: false,
            }),
            Condvar::new(),
        ));
        let theirs = Arc::clone(&shared);
        let task = tokio::task::spawn_blocking(move || follow(&file, size, &theirs));
        Self { shared, task }
    }

    /// Range `index` is written.
    fn completed(&self, index: usize) {
        let (lock, cv) = &*self.shared;
        if let Ok(mut c) = lock.lock() {
            if let Some(d) = c.done.get_mut(index) {
                *d = true;
            }
            while c.done.get(c.next).copied().unwrap_or(false) {
                c.next += 1;
            }
        }
        cv.notify_one();
    }

    /// The download failed: stop following.
    async fn abort(self) {
        let (lock, cv) = &*self.shared;
        if let Ok(mut c) = lock.lock() {
            c.aborted = true;
        }
        cv.notify_one();
        let _ = self.task.await;
    }

    /// Every range is written: the file's sha256 (lowercase hex).
    async fn finish(self) -> io::Result<String> {
        match self.task.await {
            Ok(Ok(Some(digest))) => Ok(digest),
            Ok(Ok(None)) => Err(io::Error::other("the download was stopped")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

/// The follower's thread: `None` when aborted.
fn follow(
    file: &File,
    size: u64,
    shared: &(Mutex<Completed>, Condvar),
) -> io::Result<Option<String>> {
    let (lock, cv) = shared;
    let poisoned = |_| io::Error::other("the download's progress lock is poisoned");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let (mut hashed, mut flushed) = (0u64, 0u64);
    while hashed < size {
        let prefix = {
            let mut c = lock.lock().map_err(poisoned)?;
            while c.prefix() <= hashed && !c.aborted {
                c = cv.wait(c).map_err(poisoned)?;
            }
            if c.aborted {
                return Ok(None);
            }
            c.prefix()
        };
        while hashed < prefix {
            let n = usize::try_from(prefix - hashed)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            file.read_exact_at(&mut buf[..n], hashed)?;
            hasher.update(&buf[..n]);
            hashed += n as u64;
        }
        if hashed - flushed >= FLUSH_EVERY {
            file.sync_data()?;
            flushed = hashed;
        }
    }
    Ok(Some(hex(&hasher.finalize())))
}

/// The download to a writer, in order: up to `parallel` ranges held in
/// memory at once.
async fn to_writer(
    source: &impl ArchiveSource,
    plan: &Plan,
    settings: &Settings,
    bar: &ProgressBar,
    out: &mut impl Write,
) -> Result<(), DownloadError> {
    let mut hasher = Sha256::new();
    let mut stream = futures::stream::iter(ranges(plan.size, settings.range_size))
        .map(|range| async move {
            let mut buf = Vec::with_capacity(usize::try_from(range.1 - range.0).unwrap_or(0));
            let mut sink = |_: u64, bytes: &[u8]| {
                buf.extend_from_slice(bytes);
                Ok(())
            };
            fetch_range(source, plan, range, settings, bar, &mut sink).await?;
            Ok::<_, DownloadError>(buf)
        })
        .buffered(settings.parallel.max(1));
    while let Some(buf) = stream.next().await {
        let buf = buf?;
        hasher.update(&buf);
        out.write_all(&buf).map_err(DownloadError::Stdout)?;
    }
    out.flush().map_err(DownloadError::Stdout)?;
    let got = hex(&hasher.finalize());
    if got != plan.sha256 {
        return Err(DownloadError::Digest {
            node: plan.node.clone(),
            got,
            want: plan.sha256.clone(),
            to_stdout: true,
        });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes the temporary file unless the download completed.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

fn usage(e: clap::Error, last: &str) -> DownloadError {
    DownloadError::Usage(crate::cmd::usage_message(e, last))
}

/// The `--help` text, in kubectl's layout.
pub fn help_text() -> String {
    crate::cmd::kubectl_help(&DownloadArgs::command(), LONG, EXAMPLES, USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RangeBody;
    use api_types::PodCheckpointSpec;
    use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use api_types::podcheckpoint::{
        CheckpointArchive, PodCheckpointContainerStatus, PodCheckpointStatus, reason,
    };
    use bytes::Bytes;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::client::ServerError;

    /// What the fake server does with the n-th range request.
    #[derive(Debug, Clone)]
    enum Fault {
        /// Answer with an error (the node agent is gone: 503 from the extension).
        Refuse(u16, &'static str),
        /// Send this many bytes, then break off.
        CutAfter(usize),
    }

    /// A PodCheckpoint and its archive behind the extension.
    struct FakeServer {
        pc: PodCheckpoint,
        archive: Vec<u8>,
        /// The server's cap on a range.
        cap: u64,
        /// Faults for request numbers (0-based).
        faults: Mutex<Vec<(usize, Fault)>>,
        requests: AtomicUsize,
        asked: Mutex<Vec<(u64, u64)>>,
    }

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    fn archive(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn object(containers: &[(&str, &[u8])], ready: bool) -> PodCheckpoint {
        let mut pc = PodCheckpoint::new(
            "web-1",
            PodCheckpointSpec {
                source_pod_name: "web".into(),
                ..Default::default()
            },
        );
        pc.status = Some(PodCheckpointStatus {
            node_name: Some("node-a".into()),
            checkpointed_containers: containers
                .iter()
                .map(|(c, bytes)| PodCheckpointContainerStatus {
                    name: (*c).into(),
                    archive: Some(CheckpointArchive {
                        path: format!("uid-1/checkpoint-web_apps-{c}-2026-01-02T03:04:05Z.tar"),
                        size_bytes: bytes.len() as i64,
                        sha256: sha(bytes),
                    }),
                    ..Default::default()
                })
                .collect(),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                reason: if ready {
                    reason::COMPLETED
                } else {
                    reason::IN_PROGRESS
                }
                .into(),
                message: String::new(),
                last_transition_time: Time(api_types::k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            ..Default::default()
        });
        pc
    }

    impl FakeServer {
        fn new(bytes: Vec<u8>) -> Self {
            Self {
                pc: object(&[("app", &bytes)], true),
                archive: bytes,
                cap: u64::MAX,
                faults: Mutex::default(),
                requests: AtomicUsize::new(0),
                asked: Mutex::default(),
            }
        }

        fn fault(&self, request: usize, fault: Fault) {
            self.faults.lock().unwrap().push((request, fault));
        }
    }

    fn server_error(code: u16, reason: &str, message: &str) -> ClientError {
        ClientError::Server(ServerError {
            code,
            reason: reason.into(),
            message: message.into(),
        })
    }

    impl ArchiveSource for FakeServer {
        async fn get_pod_checkpoint(
            &self,
            _: &str,
            name: &str,
        ) -> Result<PodCheckpoint, ClientError> {
            if name == "web-1" {
                Ok(self.pc.clone())
            } else {
                Err(server_error(
                    404,
                    "NotFound",
                    &format!("podcheckpoints.checkpoint.kcr.dev \"{name}\" not found"),
                ))
            }
        }

        async fn read_range(
            &self,
            _: &str,
            _: &str,
            container: &str,
            offset: u64,
            length: u64,
        ) -> Result<RangeBody, ClientError> {
            assert_eq!(container, "app");
            let n = self.requests.fetch_add(1, Ordering::SeqCst);
            self.asked.lock().unwrap().push((offset, length));
            let fault = self
                .faults
                .lock()
                .unwrap()
                .iter()
                .find(|(at, _)| *at == n)
                .map(|(_, f)| f.clone());
            let size = self.archive.len() as u64;
            if offset >= size {
                return Err(server_error(
                    416,
                    "RequestedRangeNotSatisfiable",
                    "past the end",
                ));
            }
            let end = (offset + length.min(self.cap)).min(size);
            let bytes = self.archive[offset as usize..end as usize].to_vec();
            let chunks: Vec<Result<Bytes, String>> = match fault {
                Some(Fault::Refuse(code, message)) => {
                    let reason = api_types::StatusReason::from_code(code)
                        .map(|r| r.as_str())
                        .unwrap_or_default();
                    return Err(server_error(code, reason, message));
                }
                Some(Fault::CutAfter(k)) => vec![
                    Ok(Bytes::from(bytes[..k.min(bytes.len())].to_vec())),
                    Err("connection reset by peer".into()),
                ],
                None => bytes
                    .chunks(3)
                    .map(|c| Ok(Bytes::from(c.to_vec())))
                    .collect(),
            };
            Ok(RangeBody {
                start: offset,
                end,
                size,
                chunks: futures::stream::iter(chunks).boxed(),
            })
        }
    }

    fn settings(range_size: u64) -> Settings {
        Settings {
            parallel: 3,
            range_size,
            retries: 2,
            backoff: Duration::ZERO,
            progress: false,
        }
    }

    async fn to(
        server: &FakeServer,
        target: Target,
        container: Option<&str>,
        range_size: u64,
    ) -> (Result<(), DownloadError>, Vec<u8>, String) {
        let (mut out, mut notices) = (Vec::new(), Vec::new());
        let r = download(
            server,
            "apps",
            "web-1",
            container,
            target,
            &settings(range_size),
            &mut out,
            &mut notices,
        )
        .await;
        (r, out, String::from_utf8(notices).unwrap())
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_file_in_parallel_ranges_private_and_verified() {
        let bytes = archive(1000);
        let server = FakeServer::new(bytes.clone());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.tar");
        let (r, out, notices) = to(&server, Target::File(file.clone()), None, 64).await;
        r.unwrap();
        assert_eq!(fs::read(&file).unwrap(), bytes);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(entries(dir.path()), ["web.tar"]);
        assert_eq!(notices, "Defaulted container \"app\"\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "podcheckpoint/web-1 container app: archive saved to {} (1000 bytes, sha256 {})\n",
                file.display(),
                sha(&bytes)
            )
        );
        // 16 ranges of 64 bytes, each asked once.
        let mut asked = server.asked.lock().unwrap().clone();
        asked.sort();
        assert_eq!(asked.len(), 16);
        assert_eq!(asked[0], (0, 64));
        assert_eq!(asked[15], (960, 40));
    }

    #[tokio::test]
    async fn stdout_in_order_and_ranges_cut_by_the_server() {
        let bytes = archive(777);
        let mut server = FakeServer::new(bytes.clone());
        server.cap = 50;
        let (r, out, _) = to(&server, Target::Stdout, Some("app"), 200).await;
        r.unwrap();
        assert_eq!(out, bytes);
        // Each 200-byte range took 4 requests of at most 50 bytes.
        let asked = server.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 16, "{asked:?}");
    }

    #[tokio::test]
    async fn interrupted_ranges_resume_where_they_stopped() {
        let bytes = archive(300);
        let server = FakeServer::new(bytes.clone());
        server.fault(0, Fault::CutAfter(10));
        server.fault(
            1,
            Fault::Refuse(503, "node node-a (127.0.0.1:10350) cannot be reached"),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        let (r, _, _) = to(&server, Target::File(file.clone()), None, 1000).await;
        r.unwrap();
        assert_eq!(fs::read(&file).unwrap(), bytes);
        // Asked from 0, then from byte 10 twice (refused, then served).
        assert_eq!(
            server.asked.lock().unwrap().clone(),
            [(0, 300), (10, 290), (10, 290)]
        );
    }

    #[tokio::test]
    async fn a_node_that_stays_gone_fails_naming_it_and_leaves_no_file() {
        let bytes = archive(300);
        let server = FakeServer::new(bytes);
        for n in 0..10 {
            server.fault(
                n,
                Fault::Refuse(
                    503,
                    "node node-a (127.0.0.1:10350) cannot be reached: connection refused",
                ),
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        let (r, out, _) = to(&server, Target::File(file.clone()), None, 100).await;
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to download the archive of container app of podcheckpoint web-1 from node node-a: 3 attempts failed, the last: Error from server (ServiceUnavailable): node node-a (127.0.0.1:10350) cannot be reached: connection refused"
        );
        assert!(out.is_empty());
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    }

    #[tokio::test]
    async fn a_wrong_digest_saves_nothing() {
        let bytes = archive(100);
        let mut server = FakeServer::new(bytes);
        if let Some(st) = server.pc.status.as_mut() {
            st.checkpointed_containers[0]
                .archive
                .as_mut()
                .unwrap()
                .sha256 = "00".repeat(32);
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        let (r, _, _) = to(&server, Target::File(file.clone()), None, 30).await;
        let e = r.unwrap_err().to_string();
        assert!(
            e.starts_with("the archive downloaded from node node-a does not match the PodCheckpoint's status: sha256 "),
            "{e}"
        );
        assert!(e.ends_with("; nothing was saved"), "{e}");
        assert!(entries(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn an_object_already_read_is_downloaded() {
        let bytes = archive(500);
        let server = FakeServer::new(bytes.clone());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.tar");
        let (mut out, mut notices) = (Vec::new(), Vec::new());
        download_object(
            &server,
            &server.pc,
            "apps",
            "web-1",
            Some("app"),
            Target::File(file.clone()),
            &settings(128),
            &mut out,
            &mut notices,
        )
        .await
        .unwrap();
        assert_eq!(fs::read(&file).unwrap(), bytes);
        assert!(notices.is_empty());
    }

    #[tokio::test]
    async fn refusals_are_not_retried() {
        let server = FakeServer::new(archive(10));
        server.fault(0, Fault::Refuse(403, "forbidden"));
        let (r, _, _) = to(&server, Target::Stdout, None, 100).await;
        assert_eq!(
            r.unwrap_err().to_string(),
            "failed to download the archive of container app of podcheckpoint web-1: Error from server (Forbidden): forbidden"
        );
        assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn objects_without_the_archive() {
        let mut server = FakeServer::new(archive(10));
        let (r, _, _) = to(&server, Target::Stdout, Some("db"), 100).await;
        assert_eq!(
            r.unwrap_err().to_string(),
            "container db has no archive in podcheckpoint web-1: choose one of [app]"
        );
        server.pc = object(&[("app", b"x"), ("sidecar", b"y")], true);
        let (r, _, _) = to(&server, Target::Stdout, None, 100).await;
        assert_eq!(
            r.unwrap_err().to_string(),
            "podcheckpoint web-1 has archives of several containers: choose one of [app sidecar] with -c"
        );
        server.pc = object(&[], false);
        let (r, _, _) = to(&server, Target::Stdout, None, 100).await;
        assert_eq!(
            r.unwrap_err().to_string(),
            "podcheckpoint web-1 is not Ready (CheckpointInProgress): it has no archive yet"
        );
        let (mut out, mut notices) = (Vec::new(), Vec::new());
        let r = download(
            &server,
            "apps",
            "ghost",
            None,
            Target::Stdout,
            &settings(10),
            &mut out,
            &mut notices,
        )
        .await;
        assert_eq!(
            crate::Error::from(r.unwrap_err()).render(),
            "Error from server (NotFound): podcheckpoints.checkpoint.kcr.dev \"ghost\" not found\n"
        );
    }

    #[tokio::test]
    async fn the_follower_hashes_the_complete_prefix_in_order() {
        let bytes = archive(10_000);
        let path = std::env::temp_dir().join(format!("kcr-follower-{}", std::process::id()));
        fs::write(&path, &bytes).unwrap();
        let size = bytes.len() as u64;
        let parts = ranges(size, 3_000);
        assert_eq!(parts.len(), 4);

        // ranges land out of order: the digest is the file's
        let follower = Follower::start(File::open(&path).unwrap(), &parts, size);
        for i in [2, 0, 3, 1] {
            follower.completed(i);
        }
        assert_eq!(follower.finish().await.unwrap(), sha(&bytes));

        // a download that fails stops the follower (range 0 never lands)
        let follower = Follower::start(File::open(&path).unwrap(), &parts, size);
        follower.completed(1);
        follower.completed(2);
        follower.abort().await;

        // an empty archive
        let follower = Follower::start(File::open(&path).unwrap(), &[], 0);
        assert_eq!(follower.finish().await.unwrap(), sha(b""));
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn sizes_and_ranges() {
        assert_eq!(parse_size("16Mi"), Some(16 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1Gi"), Some(1 << 30));
        for bad in ["", "0", "-1", "1MB", "Mi", "1.5Mi"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(ranges(10, 4), [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(ranges(0, 4), []);
    }

    #[test]
    fn help_snapshot() {
        insta::assert_snapshot!("download_help", help_text());
    }

    #[tokio::test]
    async fn usage_errors() {
        let run_with = |args: &[&str]| {
            let argv: Vec<OsString> = std::iter::once("kubectl-checkpoint")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            async move {
                let mut out = Vec::new();
                let mut notices = Vec::new();
                let routed = subcommand_args(&argv).expect("routed to download");
                run(routed, &mut out, &mut notices)
                    .await
                    .unwrap_err()
                    .to_string()
            }
        };
        assert_eq!(
            run_with(&["download"]).await,
            "expected 'checkpoint download NAME'.\nNAME (a PodCheckpoint) is a required argument for the download command\nSee 'kubectl checkpoint download -h' for help and examples"
        );
        assert_eq!(
            run_with(&["download", "a", "--range-size", "1MB"]).await,
            "invalid argument \"1MB\" for \"--range-size\" flag: a positive number of bytes, like 16Mi, 1Gi or 4096\nSee 'kubectl checkpoint download -h' for help and examples"
        );
        assert_eq!(
            run_with(&["download", "a", "--parallel", "0"]).await,
            "--parallel must be between 1 and 64, got 0\nSee 'kubectl checkpoint download -h' for help and examples"
        );
        assert!(subcommand_args(&[OsString::from("k"), OsString::from("pod/download")]).is_none());
        assert!(
            subcommand_args(&[
                OsString::from("k"),
                OsString::from("-n"),
                OsString::from("x"),
                OsString::from("download")
            ])
            .is_some()
        );
    }
}
