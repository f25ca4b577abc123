//! Everything reading an archive can fail with: one variant per thing that
//! failed, the cause kept as `source`.

use std::io;

use crate::crit::ImageError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest piece of archive-controlled text an error message repeats.
const SHORT: usize = 120;

/// `s` cut to a length fit for an error message (on a char boundary).
pub(crate) fn shorten(s: &str) -> String {
    match s.char_indices().nth(SHORT) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_owned(),
    }
}

/// Why an archive could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to open the archive")]
    Open(#[source] io::Error),
    #[error("the archive is not a regular file")]
    NotAFile,
    #[error(
        "the archive is {format}-compressed: decompress it first (checkpoint archives written through CRI are plain tar)"
    )]
    Compressed { format: &'static str },
    #[error("failed to read the archive as tar")]
    ReadArchive(#[source] io::Error),
    #[error(
        "a tar header of the archive (with its PAX or GNU long-name records) is larger than {limit} bytes"
    )]
    TarHeaderTooLarge { limit: u64 },
    #[error("the archive has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("archive entry {path:?} is not a safe relative path: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    #[error(
        "archive entry {path:?} is a {kind} (to {target:?}): checkpoint archives hold no links"
    )]
    LinkEntry {
        path: String,
        kind: &'static str,
        target: String,
    },
    #[error(
        "archive entry {path:?} is a {kind}: checkpoint archives hold only files and directories"
    )]
    UnsupportedEntry { path: String, kind: &'static str },
    #[error(
        "archive entry {path:?} declares {declared} bytes but the archive ends {available} bytes after its header: the archive is truncated or corrupt"
    )]
    Truncated {
        path: String,
        declared: u64,
        available: u64,
    },
    #[error("archive entry {path:?} appears more than once")]
    DuplicateEntry { path: String },
    #[error("archive entry {path:?} is {size} bytes, more than the {limit} bytes accepted")]
    EntryTooLarge { path: String, size: u64, limit: u64 },
    #[error("failed to read archive entry {path:?}")]
    ReadEntry {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the archive has no {entry}: {why}")]
    MissingEntry { entry: String, why: &'static str },
    #[error("{entry} is not valid JSON of the expected shape")]
    InvalidJson {
        entry: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{entry} has an invalid {field} {value:?} (not an RFC 3339 time)")]
    InvalidTime {
        entry: &'static str,
        field: &'static str,
        value: String,
    },
    #[error("spec.dump has an invalid io.kubernetes.cri-o.Metadata annotation")]
    CriOMetadata {
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid CRIU image {image}")]
    Image {
        image: String,
        #[source]
        source: ImageError,
    },
    #[error("stats-dump holds no dump statistics")]
    NoDumpStats,
    #[error("the process tree in checkpoint/pstree.img is invalid: {0}")]
    ProcessTree(String),
    #[error("the archive has more than {limit} processes")]
    TooManyProcesses { limit: usize },
    #[error("the process tree is deeper than {limit} levels")]
    ProcessTreeTooDeep { limit: usize },
    #[error("the pagemaps of the archive have more than {limit} entries to keep")]
    TooManyPagemapEntries { limit: usize },
    #[error(
        "{image} is {size} bytes but pagemap-{pid}.img places the command line of process {pid} at bytes {start}..{end}"
    )]
    PagesImageTooShort {
        image: String,
        pid: u32,
        size: u64,
        start: u64,
        end: u64,
    },
}
