//! One pass over the tar stream (checkpointctl's `iterateTarArchive` and
//! `getArchiveSizes`, without its `UntarFiles` to a temporary directory).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use crate::crit::{ImageError, ImageReader};
use crate::error::{Error, Result, shorten};
use crate::images::{
    CORE_MAGIC, CoreEntry, MM_MAGIC, MmEntry, PAGEMAP_MAGIC, PSTREE_MAGIC, PagemapEntry,
    PagemapHead, PstreeEntry, STATS_MAGIC, StatsEntry,
};
use crate::metadata::{ContainerConfig, GO_ZERO_TIME, Spec, container_info, format_rfc3339};
use crate::pstree::{self, ArgPlan, CoreInfo};
use crate::{ArchiveSizes, DumpStats, Inspection, Limits, Options};

const CONFIG_DUMP: &str = "config.dump";
const SPEC_DUMP: &str = "spec.dump";
const STATS_DUMP: &str = "stats-dump";
const ROOTFS_DIFF: &str = "rootfs-diff.tar";
const NOT_A_CHECKPOINT: &str = "not a container checkpoint archive";

pub(crate) fn inspect<R, F>(mut open: F, options: &Options) -> Result<Inspection>
where
    R: Read + Seek,
    F: FnMut() -> io::Result<R>,
{
    let mut options = *options;
    options.ps_tree |= options.cmdline;
    let reader = open().map_err(Error::Open)?;
    let mut scan = Scan::new(options);
    scan.run(reader)?;
    scan.finish(&mut open)
}

/// How many bytes the tar reader may take while it parses one header (with
/// its PAX and GNU long-name records, which the `tar` crate reads whole into
/// memory). Armed around each `Entries::next`, off while entry data is read.
#[derive(Debug, Default)]
struct Meter {
    limit: Cell<Option<u64>>,
    used: Cell<u64>,
    tripped: Cell<bool>,
}

impl Meter {
    fn arm(&self, limit: u64) {
        self.limit.set(Some(limit));
        self.used.set(0);
    }

    fn disarm(&self) {
        self.limit.set(None);
    }
}

#[derive(Debug)]
struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(limit) = self.meter.limit.get() else {
            return self.inner.read(buf);
        };
        let used = self.meter.used.get();
        let left = limit.saturating_sub(used);
        if left == 0 && !buf.is_empty() {
            self.meter.tripped.set(true);
            return Err(io::Error::other("tar header larger than the limit"));
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let got = self.inner.read(&mut buf[..n])?;
        self.meter.used.set(used + got as u64);
        Ok(got)
    }
}

impl<R: Seek> Seek for Metered<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Where a `pages-<id>.img` lies in the archive.
#[derive(Debug, Clone, Copy)]
struct Location {
    data_offset: u64,
    size: u64,
}

/// A pagemap whose `mm-<pid>.img` has not been seen yet.
#[derive(Debug)]
struct PendingPagemap {
    pages_id: u32,
    entries: Vec<PagemapEntry>,
}

#[derive(Debug)]
struct Scan {
    options: Options,
    limits: Limits,
    archive_len: u64,
    entries: usize,
    has_checkpoint_dir: bool,
    /// Entries read or located, to refuse a second copy of any of them.
    interpreted: HashSet<String>,
    config: Option<ContainerConfig>,
    spec: Option<Spec>,
    stats: Option<DumpStats>,
    sizes: ArchiveSizes,
    cores: HashMap<u32, CoreInfo>,
    pstree: Option<Vec<PstreeEntry>>,
    args: HashMap<u32, (u64, u64)>,
    pending: HashMap<u32, PendingPagemap>,
    pending_entries: usize,
    plans: Vec<ArgPlan>,
    cmdline_budget: u64,
    pages: HashMap<u32, Location>,
}

/// A CRIU image under `checkpoint/` this crate reads.
enum Image {
    Core(u32),
    Pstree,
    Mm(u32),
    Pagemap(u32),
    Pages(u32),
}

fn classify(name: &str) -> Option<Image> {
    let id = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".img"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
    };
    if name == "pstree.img" {
        return Some(Image::Pstree);
    }
    id("core-")
        .map(Image::Core)
        .or_else(|| id("mm-").map(Image::Mm))
        .or_else(|| id("pagemap-").map(Image::Pagemap))
        .or_else(|| id("pages-").map(Image::Pages))
}

/// A tar path as a relative path of plain components (`./` and empty
/// components dropped), or why it is not one.
fn normalize(raw: &[u8]) -> Result<String> {
    let unsafe_path = |reason| Error::UnsafePath {
        path: shorten(&String::from_utf8_lossy(raw)),
        reason,
    };
    let s = std::str::from_utf8(raw).map_err(|_| unsafe_path("it is not UTF-8"))?;
    if s.starts_with('/') {
        return Err(unsafe_path("it is absolute"));
    }
    let mut parts = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_path("it climbs out with ..")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn entry_kind(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        tar::EntryType::GNUSparse => "GNU sparse file",
        _ => "entry of an unknown type",
    }
}

/// Sniff a compressed stream by its magic.
fn compression(head: &[u8]) -> Option<&'static str> {
    [
        (&[0x1f, 0x8b][..], "gzip"),
        (&[0x28, 0xb5, 0x2f, 0xfd][..], "zstd"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00][..], "xz"),
        (&b"BZh"[..], "bzip2"),
    ]
    .into_iter()
    .find(|(magic, _)| head.starts_with(magic))
    .map(|(_, name)| name)
}

impl Scan {
    fn new(options: Options) -> Self {
        Self {
            options,
            limits: options.limits,
            archive_len: 0,
            entries: 0,
            has_checkpoint_dir: false,
            interpreted: HashSet::new(),
            config: None,
            spec: None,
            stats: None,
            sizes: ArchiveSizes::default(),
            cores: HashMap::new(),
            pstree: None,
            args: HashMap::new(),
            pending: HashMap::new(),
            pending_entries: 0,
            plans: Vec::new(),
            cmdline_budget: options.limits.max_cmdline_total,
            pages: HashMap::new(),
        }
    }

    fn run<R: Read + Seek>(&mut self, mut reader: R) -> Result<()> {
        self.archive_len = reader.seek(SeekFrom::End(0)).map_err(Error::ReadArchive)?;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(Error::ReadArchive)?;
        let mut head = [0u8; 6];
        let n = read_up_to(&mut reader, &mut head).map_err(Error::ReadArchive)?;
        if let Some(format) = compression(&head[..n]) {
            return Err(Error::Compressed { format });
        }
        reader
            .seek(SeekFrom::Start(0))
            .map_err(Error::ReadArchive)?;
        self.sizes.archive_size = self.archive_len;

        let meter = Rc::new(Meter::default());
        let mut archive = tar::Archive::new(Metered {
            inner: reader,
            meter: Rc::clone(&meter),
        });
        let mut entries = archive.entries_with_seek().map_err(Error::ReadArchive)?;
        loop {
            meter.arm(self.limits.max_tar_header);
            let next = entries.next();
            meter.disarm();
            let entry = match next {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(_)) if meter.tripped.get() => {
                    return Err(Error::TarHeaderTooLarge {
                        limit: self.limits.max_tar_header,
                    });
                }
                // The tar crate's messages quote header bytes: keep them short.
                Some(Err(e)) => {
                    return Err(Error::ReadArchive(io::Error::new(
                        e.kind(),
                        shorten(&e.to_string()),
                    )));
                }
            };
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(Error::TooManyEntries {
                    limit: self.limits.max_entries,
                });
            }
            self.visit(entry)?;
        }
        Ok(())
    }

    fn visit<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let path = normalize(&entry.path_bytes())?;
        if kind.is_dir() {
            self.has_checkpoint_dir |= path == "checkpoint";
            return Ok(());
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| shorten(&String::from_utf8_lossy(&t)))
                .unwrap_or_default();
            return Err(Error::LinkEntry {
                path,
                kind: if kind.is_symlink() {
                    "symbolic link"
                } else {
                    "hard link"
                },
                target,
            });
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            return Err(Error::UnsupportedEntry {
                path,
                kind: entry_kind(kind),
            });
        }
        let size = entry.size();
        let data_offset = entry.raw_file_position();
        let available = self.archive_len.saturating_sub(data_offset);
        if size > available {
            return Err(Error::Truncated {
                path,
                declared: size,
                available,
            });
        }

        if let Some(name) = path.strip_prefix("checkpoint/") {
            self.has_checkpoint_dir = true;
            self.sizes.checkpoint_size = self.sizes.checkpoint_size.saturating_add(size);
            if name.starts_with("pages-") {
                self.sizes.pages_size = self.sizes.pages_size.saturating_add(size);
            }
            if !name.contains('/') {
                self.image(&path, name, &mut entry, data_offset, size)?;
            }
            return Ok(());
        }
        match path.as_str() {
            CONFIG_DUMP => {
                self.once(&path)?;
                let bytes = self.read_json(&path, &mut entry, size)?;
                self.config =
                    Some(
                        serde_json::from_slice(&bytes).map_err(|source| Error::InvalidJson {
                            entry: CONFIG_DUMP,
                            source,
                        })?,
                    );
            }
            SPEC_DUMP => {
                self.once(&path)?;
                let bytes = self.read_json(&path, &mut entry, size)?;
                self.spec =
                    Some(
                        serde_json::from_slice(&bytes).map_err(|source| Error::InvalidJson {
                            entry: SPEC_DUMP,
                            source,
                        })?,
                    );
            }
            STATS_DUMP if self.options.stats => {
                self.once(&path)?;
                let stats = self.read_stats(&mut entry)?;
                self.stats = Some(stats);
            }
            ROOTFS_DIFF => {
                self.once(&path)?;
                self.sizes.rootfs_diff_size = size;
            }
            _ => {}
        }
        Ok(())
    }

    fn once(&mut self, path: &str) -> Result<()> {
        if self.interpreted.insert(path.to_owned()) {
            Ok(())
        } else {
            Err(Error::DuplicateEntry {
                path: path.to_owned(),
            })
        }
    }

    fn read_json(&self, path: &str, entry: &mut impl Read, size: u64) -> Result<Vec<u8>> {
        if size > self.limits.max_json {
            return Err(Error::EntryTooLarge {
                path: path.to_owned(),
                size,
                limit: self.limits.max_json,
            });
        }
        let mut bytes = Vec::new();
        entry
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::ReadEntry {
                path: path.to_owned(),
                source,
            })?;
        Ok(bytes)
    }

    fn read_stats(&self, entry: &mut impl Read) -> Result<DumpStats> {
        let image_err = |source| Error::Image {
            image: STATS_DUMP.to_owned(),
            source,
        };
        let mut r = ImageReader::new(entry, self.limits.max_message);
        r.read_magic("STATS", STATS_MAGIC).map_err(image_err)?;
        let stats: StatsEntry = r.first("stats_entry").map_err(image_err)?;
        stats.dump.ok_or(Error::NoDumpStats)
    }

    fn image<R: Read>(
        &mut self,
        path: &str,
        name: &str,
        entry: &mut tar::Entry<'_, R>,
        data_offset: u64,
        size: u64,
    ) -> Result<()> {
        let Some(image) = classify(name) else {
            return Ok(());
        };
        let image_err = |source| Error::Image {
            image: path.to_owned(),
            source,
        };
        let max_message = self.limits.max_message;
        match image {
            Image::Core(id) if self.options.ps_tree => {
                self.once(path)?;
                let mut r = ImageReader::new(entry, max_message);
                r.read_magic("CORE", CORE_MAGIC).map_err(image_err)?;
                let core: CoreEntry = r.first("core_entry").map_err(image_err)?;
                let (comm, state) = core
                    .tc
                    .map(|tc| (pstree::comm_text(&tc.comm), tc.task_state))
                    .unwrap_or_default();
                self.cores.insert(id, CoreInfo { comm, state });
            }
            Image::Pstree if self.options.ps_tree => {
                self.once(path)?;
                let mut r = ImageReader::new(entry, max_message);
                r.read_magic("PSTREE", PSTREE_MAGIC).map_err(image_err)?;
                let mut list = Vec::new();
                while let Some(e) = r.next::<PstreeEntry>("pstree_entry").map_err(image_err)? {
                    if list.len() == self.limits.max_processes {
                        return Err(Error::TooManyProcesses {
                            limit: self.limits.max_processes,
                        });
                    }
                    list.push(e);
                }
                self.pstree = Some(list);
            }
            Image::Mm(pid) if self.options.cmdline => {
                self.once(path)?;
                let mut r = ImageReader::new(entry, max_message);
                r.read_magic("MM", MM_MAGIC).map_err(image_err)?;
                let mm: MmEntry = r.first("mm_entry").map_err(image_err)?;
                if mm.mm_arg_end < mm.mm_arg_start {
                    return Err(image_err(ImageError::Invalid(format!(
                        "mm_arg_end {:#x} precedes mm_arg_start {:#x}",
                        mm.mm_arg_end, mm.mm_arg_start
                    ))));
                }
                self.args.insert(pid, (mm.mm_arg_start, mm.mm_arg_end));
                if let Some(p) = self.pending.remove(&pid) {
                    self.pending_entries -= p.entries.len();
                    let mut plan = self.plan(pid, p.pages_id);
                    for e in &p.entries {
                        plan.add(e).map_err(|m| Error::Image {
                            image: format!("checkpoint/pagemap-{pid}.img"),
                            source: ImageError::Invalid(m),
                        })?;
                    }
                    self.plans.push(plan);
                }
            }
            Image::Pagemap(pid) if self.options.cmdline => {
                self.once(path)?;
                let mut r = ImageReader::new(entry, max_message);
                r.read_magic("PAGEMAP", PAGEMAP_MAGIC).map_err(image_err)?;
                let head: PagemapHead = r.first("pagemap_head").map_err(image_err)?;
                if self.args.contains_key(&pid) {
                    let mut plan = self.plan(pid, head.pages_id);
                    while let Some(e) =
                        r.next::<PagemapEntry>("pagemap_entry").map_err(image_err)?
                    {
                        plan.add(&e)
                            .map_err(|m| image_err(ImageError::Invalid(m)))?;
                    }
                    self.plans.push(plan);
                } else {
                    let mut entries = Vec::new();
                    while let Some(e) =
                        r.next::<PagemapEntry>("pagemap_entry").map_err(image_err)?
                    {
                        self.pending_entries += 1;
                        if self.pending_entries > self.limits.max_pagemap_entries {
                            return Err(Error::TooManyPagemapEntries {
                                limit: self.limits.max_pagemap_entries,
                            });
                        }
                        entries.push(e);
                    }
                    self.pending.insert(
                        pid,
                        PendingPagemap {
                            pages_id: head.pages_id,
                            entries,
                        },
                    );
                }
            }
            Image::Pages(id) if self.options.cmdline => {
                self.once(path)?;
                self.pages.insert(id, Location { data_offset, size });
            }
            _ => {}
        }
        Ok(())
    }

    /// A plan for `pid`'s arguments, its length cut at the per-process limit
    /// and what is left of the total.
    fn plan(&mut self, pid: u32, pages_id: u32) -> ArgPlan {
        let (start, end) = self.args.get(&pid).copied().unwrap_or_default();
        let full = end - start;
        let len = full.min(self.limits.max_cmdline).min(self.cmdline_budget);
        self.cmdline_budget -= len;
        ArgPlan::new(pid, pages_id, start, len, len < full)
    }

    fn finish<R, F>(mut self, open: &mut F) -> Result<Inspection>
    where
        R: Read + Seek,
        F: FnMut() -> io::Result<R>,
    {
        if !self.has_checkpoint_dir {
            return Err(Error::MissingEntry {
                entry: "checkpoint/ directory".into(),
                why: NOT_A_CHECKPOINT,
            });
        }
        let missing = |entry: &str, why| Error::MissingEntry {
            entry: entry.to_owned(),
            why,
        };
        let config = self
            .config
            .take()
            .ok_or_else(|| missing(CONFIG_DUMP, NOT_A_CHECKPOINT))?;
        let spec = self
            .spec
            .take()
            .ok_or_else(|| missing(SPEC_DUMP, NOT_A_CHECKPOINT))?;
        let container = container_info(&config, &spec)?;
        let checkpointed = match config.checkpointed_time.as_deref() {
            None => None,
            Some(t) => Some(format_rfc3339(CONFIG_DUMP, "checkpointedTime", t)?)
                .filter(|t| t != GO_ZERO_TIME),
        };
        if self.options.stats && self.stats.is_none() {
            return Err(missing(STATS_DUMP, "CRIU writes it with every dump"));
        }
        let process_tree = if self.options.ps_tree {
            let entries = self.pstree.take().ok_or_else(|| {
                missing("checkpoint/pstree.img", "CRIU writes it with every dump")
            })?;
            let mut tree = pstree::build(&entries, &self.cores, self.limits.max_tree_depth)?;
            if self.options.cmdline {
                let mut lines = self.read_cmdlines(open)?;
                for p in &mut tree.processes {
                    if p.state.is_alive_or_stopped()
                        && let Some((line, truncated)) = lines.remove(&p.pid)
                    {
                        p.cmdline = Some(line);
                        p.cmdline_truncated = truncated;
                    }
                }
            }
            Some(tree)
        } else {
            None
        };
        Ok(Inspection {
            config,
            spec,
            container,
            checkpointed,
            sizes: self.sizes,
            stats: self.stats,
            process_tree,
        })
    }

    /// Read the planned argument bytes by position through a second handle.
    fn read_cmdlines<R, F>(&self, open: &mut F) -> Result<HashMap<u32, (String, bool)>>
    where
        R: Read + Seek,
        F: FnMut() -> io::Result<R>,
    {
        let mut lines = HashMap::new();
        let plans: Vec<&ArgPlan> = self.plans.iter().filter(|p| p.complete()).collect();
        if plans.is_empty() {
            return Ok(lines);
        }
        let mut reader = open().map_err(Error::Open)?;
        for plan in plans {
            let image = format!("checkpoint/pages-{}.img", plan.pages_id);
            let location = self
                .pages
                .get(&plan.pages_id)
                .ok_or_else(|| Error::MissingEntry {
                    entry: image.clone(),
                    why: "a pagemap refers to it",
                })?;
            // len <= max_cmdline: a small buffer.
            let mut buf = vec![0u8; usize::try_from(plan.len).unwrap_or(0)];
            for s in &plan.segments {
                let end = s.pages_offset.saturating_add(s.len);
                if end > location.size {
                    return Err(Error::PagesImageTooShort {
                        image,
                        pid: plan.pid,
                        size: location.size,
                        start: s.pages_offset,
                        end,
                    });
                }
                let (Ok(dest), Ok(len)) = (usize::try_from(s.dest), usize::try_from(s.len)) else {
                    continue;
                };
                let read_err = |source| Error::ReadEntry {
                    path: image.clone(),
                    source,
                };
                reader
                    .seek(SeekFrom::Start(location.data_offset + s.pages_offset))
                    .map_err(read_err)?;
                reader
                    .read_exact(&mut buf[dest..dest + len])
                    .map_err(read_err)?;
            }
            lines.insert(plan.pid, (pstree::cmdline_text(&buf), plan.truncated));
        }
        Ok(lines)
    }
}

/// Read until `buf` is full or the input ends; the count read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_or_refused() {
        assert_eq!(
            normalize(b"./checkpoint/core-1.img").unwrap(),
            "checkpoint/core-1.img"
        );
        assert_eq!(normalize(b"checkpoint//x/./y").unwrap(), "checkpoint/x/y");
        assert_eq!(normalize(b"checkpoint/").unwrap(), "checkpoint");
        assert_eq!(normalize(b"./").unwrap(), "");
        let reason = |p: &[u8]| match normalize(p) {
            Err(Error::UnsafePath { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(b"/etc/passwd"), "it is absolute");
        assert_eq!(reason(b"checkpoint/../../x"), "it climbs out with ..");
        assert_eq!(reason(b".."), "it climbs out with ..");
        assert_eq!(reason(b"\xffname"), "it is not UTF-8");
    }

    #[test]
    fn images_are_classified_by_name() {
        assert!(matches!(classify("core-12.img"), Some(Image::Core(12))));
        assert!(matches!(classify("pages-3.img"), Some(Image::Pages(3))));
        assert!(matches!(classify("pagemap-3.img"), Some(Image::Pagemap(3))));
        assert!(matches!(classify("mm-1.img"), Some(Image::Mm(1))));
        assert!(matches!(classify("pstree.img"), Some(Image::Pstree)));
        for other in [
            "core-.img",
            "core-1x.img",
            "core-+1.img",
            "inventory.img",
            "core-99999999999.img",
        ] {
            assert!(classify(other).is_none(), "{other}");
        }
    }

    #[test]
    fn compressed_archives_are_recognised() {
        assert_eq!(compression(&[0x1f, 0x8b, 8]), Some("gzip"));
        assert_eq!(compression(&[0x28, 0xb5, 0x2f, 0xfd]), Some("zstd"));
        assert_eq!(compression(b"checkp"), None);
    }
}
