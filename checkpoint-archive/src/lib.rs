//! `checkpoint-archive`: what a container checkpoint archive holds, read as a
//! stream and never unpacked.
//!
//! It mirrors two upstream libraries:
//!
//! * checkpointctl's `lib` and `internal/container.go` ([`metadata`]):
//!   `config.dump` and `spec.dump`, the engine and container they name, and
//!   the sizes `checkpointctl show` prints (checkpoint, memory pages, root
//!   file system diff);
//! * go-criu's `crit` ([`crit`], [`images`], [`pstree`]): CRIU's image
//!   format (a magic, then length-prefixed protobuf messages; the message
//!   types are defined here with `prost`), the dump statistics of
//!   `stats-dump`, the process tree of `pstree.img` and `core-<pid>.img`, and
//!   the command lines found through `mm-<pid>.img`, `pagemap-<pid>.img` and
//!   `pages-<id>.img`.
//!
//! The archive (the tar containerd's CRI `CheckpointContainer` writes) is read
//! in one pass with the `tar` crate, large entries skipped by seeking. Only
//! the few bytes of the command lines are read afterwards, by position,
//! through a second handle. Every size the archive declares is checked
//! against the file and against [`Limits`]; hostile input (absolute or `..`
//! paths, links, device entries, huge declared sizes, wrong magic, protobuf
//! garbage, malformed process trees) is an [`Error`], never a panic, and
//! nothing is ever written.
//!
//! ```no_run
//! use checkpoint_archive::{Options, inspect_path};
//!
//! let options = Options { stats: true, ps_tree: true, cmdline: true, ..Options::default() };
//! let inspection = inspect_path("/var/lib/kubelet/checkpoints/c.tar".as_ref(), &options)?;
//! println!("{} ({})", inspection.container.name, inspection.config.rootfs_image_name);
//! for p in &inspection.process_tree.as_ref().expect("asked for").processes {
//!     println!("{}{} {}", "  ".repeat(p.depth), p.pid, p.comm);
//! }
//! # Ok::<(), checkpoint_archive::Error>(())
//! ```

pub mod crit;
pub mod display;
mod error;
pub mod images;
pub mod metadata;
pub mod pstree;
mod scan;

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

pub use error::{Error, Result};
pub use images::DumpStatsEntry as DumpStats;
pub use metadata::{ContainerConfig, ContainerInfo, Engine, Spec};
pub use pstree::{Process, ProcessTree, TaskState};

/// Bounds on what an archive may make this crate hold or do. Every default
/// is far above what a real dump needs; tests lower them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries in the archive.
    pub max_entries: usize,
    /// Bytes of one tar header with its PAX and GNU long-name records.
    pub max_tar_header: u64,
    /// Bytes of `config.dump` or `spec.dump`.
    pub max_json: u64,
    /// Bytes of one protobuf message in a CRIU image.
    pub max_message: u64,
    /// Entries of `pstree.img`.
    pub max_processes: usize,
    /// Levels of the process tree.
    pub max_tree_depth: usize,
    /// Pagemap entries kept while a pagemap waits for its `mm-<pid>.img`
    /// (CRIU writes `mm-` first, so a real dump keeps none).
    pub max_pagemap_entries: usize,
    /// Bytes of one command line (longer ones are cut and marked).
    pub max_cmdline: u64,
    /// Bytes of all command lines together.
    pub max_cmdline_total: u64,
}

impl Limits {
    /// The limits by default: far above any real dump, far below what
    /// exhausts memory.
    pub const DEFAULT: Limits = Limits {
        max_entries: 100_000,
        max_tar_header: 1 << 20,
        max_json: 4 << 20,
        max_message: 8 << 20,
        max_processes: 65_536,
        max_tree_depth: 128,
        max_pagemap_entries: 1 << 20,
        max_cmdline: 64 << 10,
        max_cmdline_total: 4 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What to read besides the metadata and sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// CRIU's dump statistics from `stats-dump` (`checkpointctl inspect --stats`).
    pub stats: bool,
    /// The process tree (`--ps-tree`).
    pub ps_tree: bool,
    /// The processes' full command lines (`--ps-tree-cmd`); implies `ps_tree`.
    pub cmdline: bool,
    pub limits: Limits,
}

/// Sizes of the archive's parts, as `checkpointctl show` adds them up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveSizes {
    /// Regular files under `checkpoint/` (CRIU's images).
    pub checkpoint_size: u64,
    /// `checkpoint/pages-*` (memory pages), part of `checkpoint_size`.
    pub pages_size: u64,
    /// `rootfs-diff.tar`; 0 when absent.
    pub rootfs_diff_size: u64,
    /// The whole archive file.
    pub archive_size: u64,
}

/// What an archive holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub config: ContainerConfig,
    pub spec: Spec,
    pub container: ContainerInfo,
    /// `checkpointedTime` as RFC 3339 seconds; `None` when absent or Go's zero time.
    pub checkpointed: Option<String>,
    pub sizes: ArchiveSizes,
    /// With [`Options::stats`].
    pub stats: Option<DumpStats>,
    /// With [`Options::ps_tree`] or [`Options::cmdline`].
    pub process_tree: Option<ProcessTree>,
}

/// Inspect the archive at `path` (a regular file: a pipe or device cannot be
/// read by position, a directory is not an archive).
pub fn inspect_path(path: &Path, options: &Options) -> Result<Inspection> {
    let metadata = std::fs::metadata(path).map_err(Error::Open)?;
    if !metadata.is_file() {
        return Err(Error::NotAFile);
    }
    inspect(|| File::open(path).map(BufReader::new), options)
}

/// Inspect an archive that `open` opens (called once for the stream and,
/// with [`Options::cmdline`], once more to read the command lines by
/// position).
pub fn inspect<R, F>(open: F, options: &Options) -> Result<Inspection>
where
    R: Read + Seek,
    F: FnMut() -> io::Result<R>,
{
    scan::inspect(open, options)
}
