//! The process tree (go-criu `crit/explore.go` `ExplorePs`: `pstree.img`
//! for PIDs and parents, `core-<pid>.img` for the command name and state) and
//! the full command lines checkpointctl's `--ps-tree-cmd` reads
//! (go-criu `crit/mempages.go` `GetPsArgs`: the bytes between `mm_arg_start`
//! and `mm_arg_end` of `mm-<pid>.img`, found through `pagemap-<pid>.img` in
//! `pages-<pages_id>.img`).
//!
//! Unlike go-criu, a malformed tree (a parent that is not in it, two roots,
//! a cycle, a duplicate PID) is an error, never a panic or a silent drop.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::images::{PAGE_SIZE, PagemapEntry, PstreeEntry};

/// A task's state (`compel/include/uapi/task-state.h`), named as go-criu's
/// `TaskState.String()` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Alive,
    Dead,
    Stopped,
    Zombie,
    Unknown(u32),
}

impl TaskState {
    pub fn from_raw(raw: u32) -> Self {
        match raw {
            0x01 => TaskState::Alive,
            0x02 => TaskState::Dead,
            0x03 => TaskState::Stopped,
            0x06 => TaskState::Zombie,
            other => TaskState::Unknown(other),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Alive => "Alive",
            TaskState::Dead => "Dead",
            TaskState::Stopped => "Stopped",
            TaskState::Zombie => "Zombie",
            TaskState::Unknown(_) => "Unknown",
        }
    }

    pub fn is_alive(self) -> bool {
        self == TaskState::Alive
    }

    /// Only such tasks have state (memory, files) in the dump.
    pub fn is_alive_or_stopped(self) -> bool {
        matches!(self, TaskState::Alive | TaskState::Stopped)
    }
}

/// One process of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// `comm` from `core-<pid>.img` (at most [`MAX_COMM_BYTES`], lossy UTF-8).
    pub comm: String,
    pub state: TaskState,
    /// The full command line (arguments joined by spaces), when asked for and
    /// found in the dump's memory pages.
    pub cmdline: Option<String>,
    /// The command line was cut at the limit.
    pub cmdline_truncated: bool,
    /// 0 for the root.
    pub depth: usize,
    /// Indices into [`ProcessTree::processes`], ordered by PID.
    pub children: Vec<usize>,
}

/// The processes in depth-first pre-order (children by PID); the root first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessTree {
    pub processes: Vec<Process>,
}

impl ProcessTree {
    pub fn root(&self) -> Option<&Process> {
        self.processes.first()
    }
}

/// What a `core-<id>.img` contributes (its first message only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CoreInfo {
    pub comm: String,
    pub state: u32,
}

/// The kernel keeps 16 bytes of comm; anything longer in an image is cut here.
pub const MAX_COMM_BYTES: usize = 64;

/// `comm` bytes as text, cut to [`MAX_COMM_BYTES`].
pub(crate) fn comm_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_COMM_BYTES)]).into_owned()
}

/// Build the tree from `pstree.img`'s entries and the cores.
pub(crate) fn build(
    entries: &[PstreeEntry],
    cores: &HashMap<u32, CoreInfo>,
    max_depth: usize,
) -> Result<ProcessTree> {
    let invalid = |m: String| Error::ProcessTree(m);
    let mut index: HashMap<u32, usize> = HashMap::with_capacity(entries.len());
    let mut root = None;
    for (i, e) in entries.iter().enumerate() {
        if e.pid == 0 {
            return Err(invalid("a process has PID 0".into()));
        }
        if index.insert(e.pid, i).is_some() {
            return Err(invalid(format!("PID {} appears twice", e.pid)));
        }
        if e.ppid == 0 {
            if let Some(other) = root {
                let other: &PstreeEntry = &entries[other];
                return Err(invalid(format!(
                    "PIDs {} and {} both have no parent",
                    other.pid, e.pid
                )));
            }
            root = Some(i);
        }
    }
    let root = root.ok_or_else(|| invalid("no process is without a parent (no root)".into()))?;
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if e.ppid == 0 {
            continue;
        }
        let parent = *index.get(&e.ppid).ok_or_else(|| {
            invalid(format!(
                "process {} has parent {}, which is not in the tree",
                e.pid, e.ppid
            ))
        })?;
        children[parent].push(i);
    }
    for list in &mut children {
        list.sort_by_key(|&c| entries[c].pid);
    }

    // Depth-first pre-order without recursion: a hostile tree is as deep as it
    // is long.
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(entries.len());
    let mut stack = vec![(root, 0usize)];
    while let Some((i, depth)) = stack.pop() {
        if depth > max_depth {
            return Err(Error::ProcessTreeTooDeep { limit: max_depth });
        }
        order.push((i, depth));
        stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
    }
    if order.len() != entries.len() {
        let mut seen = vec![false; entries.len()];
        for &(i, _) in &order {
            seen[i] = true;
        }
        let stray: Vec<String> = entries
            .iter()
            .zip(&seen)
            .filter(|(_, s)| !**s)
            .take(5)
            .map(|(e, _)| e.pid.to_string())
            .collect();
        return Err(invalid(format!(
            "processes {} do not descend from the root (a cycle)",
            stray.join(", ")
        )));
    }

    let mut position = vec![0usize; entries.len()];
    for (pos, &(i, _)) in order.iter().enumerate() {
        position[i] = pos;
    }
    order
        .iter()
        .map(|&(i, depth)| {
            let e = &entries[i];
            let core = cores.get(&e.pid).ok_or_else(|| Error::MissingEntry {
                entry: format!("checkpoint/core-{}.img", e.pid),
                why: "pstree.img lists that process",
            })?;
            Ok(Process {
                pid: e.pid,
                ppid: e.ppid,
                pgid: e.pgid,
                sid: e.sid,
                comm: core.comm.clone(),
                state: TaskState::from_raw(core.state),
                cmdline: None,
                cmdline_truncated: false,
                depth,
                children: children[i].iter().map(|&c| position[c]).collect(),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(|processes| ProcessTree { processes })
}

/// Where the argument bytes of one process lie in its pages image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgPlan {
    pub pid: u32,
    pub pages_id: u32,
    /// Bytes wanted (the argument area, cut at the limits).
    pub len: u64,
    pub truncated: bool,
    pub segments: Vec<Segment>,
    /// Sum of the segments' lengths; the plan is complete when it is `len`.
    pub covered: u64,
    start: u64,
    /// Offset in the pages image of the next present page.
    pages_offset: u64,
    /// End of the previous pagemap entry (entries must ascend).
    prev_end: u64,
}

/// `len` bytes at `pages_offset` of the pages image go to `dest` in the
/// argument buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub pages_offset: u64,
    pub len: u64,
    pub dest: u64,
}

impl ArgPlan {
    pub fn new(pid: u32, pages_id: u32, start: u64, len: u64, truncated: bool) -> Self {
        Self {
            pid,
            pages_id,
            len,
            truncated,
            segments: Vec::new(),
            covered: 0,
            start,
            pages_offset: 0,
            prev_end: 0,
        }
    }

    /// Account one pagemap entry, in image order (`criu/pagemap.c`: only
    /// present entries occupy the pages image, one after the other).
    pub fn add(&mut self, e: &PagemapEntry) -> std::result::Result<(), String> {
        let size = u64::from(e.nr_pages)
            .checked_mul(PAGE_SIZE)
            .ok_or("a pagemap entry is too large")?;
        let end = e
            .vaddr
            .checked_add(size)
            .ok_or("a pagemap entry runs past the end of the address space")?;
        if e.vaddr < self.prev_end {
            return Err(format!(
                "pagemap entries overlap or are out of order at {:#x}",
                e.vaddr
            ));
        }
        self.prev_end = end;
        if !e.is_present() {
            return Ok(());
        }
        let next_offset = self
            .pages_offset
            .checked_add(size)
            .ok_or("the pagemap's pages add up past 2^64 bytes")?;
        // start + len <= mm_arg_end: no overflow.
        let want_end = self.start + self.len;
        let from = e.vaddr.max(self.start);
        let to = end.min(want_end);
        if from < to {
            self.segments.push(Segment {
                pages_offset: self.pages_offset + (from - e.vaddr),
                len: to - from,
                dest: from - self.start,
            });
            self.covered += to - from;
        }
        self.pages_offset = next_offset;
        Ok(())
    }

    pub fn complete(&self) -> bool {
        self.len > 0 && self.covered == self.len
    }
}

/// The argument area as checkpointctl prints it: NUL-separated arguments
/// joined by spaces. (checkpointctl keeps the final NUL as a trailing space;
/// it is dropped here.)
pub(crate) fn cmdline_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    String::from_utf8_lossy(bytes).replace('\0', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::{PE_LAZY, PE_PARENT, PE_PRESENT};

    fn e(pid: u32, ppid: u32) -> PstreeEntry {
        PstreeEntry {
            pid,
            ppid,
            pgid: 1,
            sid: 1,
        }
    }

    fn cores(pids: &[u32]) -> HashMap<u32, CoreInfo> {
        pids.iter()
            .map(|&p| {
                (
                    p,
                    CoreInfo {
                        comm: format!("c{p}"),
                        state: 1,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn builds_pre_order_with_children_by_pid() {
        let t = build(
            &[e(1, 0), e(9, 1), e(8, 1), e(12, 8)],
            &cores(&[1, 8, 9, 12]),
            16,
        )
        .unwrap();
        let pids: Vec<(u32, usize)> = t.processes.iter().map(|p| (p.pid, p.depth)).collect();
        assert_eq!(pids, [(1, 0), (8, 1), (12, 2), (9, 1)]);
        assert_eq!(t.processes[0].children, [1, 3]);
        assert_eq!(t.processes[1].children, [2]);
        assert_eq!(t.root().unwrap().comm, "c1");
        assert_eq!(t.processes[0].state, TaskState::Alive);
    }

    #[test]
    fn refuses_malformed_trees() {
        let all = cores(&[1, 2, 3, 4]);
        let err = |entries: &[PstreeEntry]| build(entries, &all, 2).unwrap_err().to_string();
        let prefix = "the process tree in checkpoint/pstree.img is invalid: ";
        assert_eq!(
            err(&[e(1, 0), e(2, 0)]),
            format!("{prefix}PIDs 1 and 2 both have no parent")
        );
        assert_eq!(
            err(&[e(1, 2), e(2, 1)]),
            format!("{prefix}no process is without a parent (no root)")
        );
        assert_eq!(
            err(&[e(1, 0), e(2, 3), e(3, 2)]),
            format!("{prefix}processes 2, 3 do not descend from the root (a cycle)")
        );
        assert_eq!(
            err(&[e(1, 0), e(2, 7)]),
            format!("{prefix}process 2 has parent 7, which is not in the tree")
        );
        assert_eq!(
            err(&[e(1, 0), e(1, 0)]),
            format!("{prefix}PID 1 appears twice")
        );
        assert_eq!(err(&[e(0, 0)]), format!("{prefix}a process has PID 0"));
        assert_eq!(
            err(&[e(1, 0), e(2, 1), e(3, 2), e(4, 3)]),
            "the process tree is deeper than 2 levels"
        );
        assert_eq!(
            build(&[e(1, 0), e(5, 1)], &all, 4).unwrap_err().to_string(),
            "the archive has no checkpoint/core-5.img: pstree.img lists that process"
        );
    }

    #[test]
    fn a_long_chain_needs_no_stack() {
        let n = 200_000u32;
        let entries: Vec<PstreeEntry> = (1..=n).map(|p| e(p, p - 1)).collect();
        let all = cores(&(1..=n).collect::<Vec<_>>());
        let t = build(&entries, &all, n as usize).unwrap();
        assert_eq!(t.processes.len(), n as usize);
        assert_eq!(t.processes.last().unwrap().depth, n as usize - 1);
    }

    fn pm(vaddr: u64, nr_pages: u32, flags: u32) -> PagemapEntry {
        PagemapEntry {
            vaddr,
            nr_pages,
            in_parent: None,
            flags: Some(flags),
        }
    }

    #[test]
    fn arg_plan_counts_only_present_pages() {
        // args at 0x7000 + 100 .. 0x8000 + 50, across two present pages;
        // a lazy and a parent entry before them take no room in the image.
        let start = 0x7000 + 100;
        let mut p = ArgPlan::new(1, 3, start, 4046, false);
        p.add(&pm(0x1000, 2, PE_PRESENT)).unwrap();
        p.add(&pm(0x3000, 1, PE_LAZY)).unwrap();
        p.add(&pm(0x4000, 1, PE_PARENT)).unwrap();
        p.add(&pm(0x7000, 2, PE_PRESENT)).unwrap();
        assert!(p.complete());
        assert_eq!(
            p.segments,
            [Segment {
                pages_offset: 2 * 4096 + 100,
                len: 4046,
                dest: 0
            }]
        );
        let mut q = ArgPlan::new(1, 3, start, 10, false);
        q.add(&pm(0x7000, 1, PE_LAZY)).unwrap();
        assert!(!q.complete(), "lazy pages are not in the image");
        let mut r = ArgPlan::new(1, 3, start, 10, false);
        r.add(&pm(0x7000, 2, PE_PRESENT)).unwrap();
        assert_eq!(
            r.add(&pm(0x7000, 1, PE_PRESENT)).unwrap_err(),
            "pagemap entries overlap or are out of order at 0x7000"
        );
        let mut s = ArgPlan::new(1, 3, start, 10, false);
        assert!(s.add(&pm(u64::MAX - 4095, 2, PE_PRESENT)).is_err());
    }

    #[test]
    fn cmdline_joins_arguments() {
        assert_eq!(cmdline_text(b"sleep\x001001\x00"), "sleep 1001");
        assert_eq!(cmdline_text(b"sh\x00-c\x00a b"), "sh -c a b");
        assert_eq!(cmdline_text(b"\xff\x00"), "\u{fffd}");
    }
}
