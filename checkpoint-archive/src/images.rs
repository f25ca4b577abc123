//! The CRIU image messages this crate reads, written here with
//! `#[derive(prost::Message)]`: only the fields used, with CRIU's field
//! numbers (proto2; prost skips every field not listed, so large repeated
//! fields such as `mm_entry.vmas` are never allocated). The magic numbers come
//! from CRIU's `criu/include/magic.h`.

/// `IMG_COMMON_MAGIC` (`criu/include/magic.h`): the first word of every image
/// but the inventory, followed by the image's own magic.
pub const IMG_COMMON_MAGIC: u32 = 0x5456_4319;
/// `IMG_SERVICE_MAGIC`: the first word of service files (`stats-dump`).
pub const IMG_SERVICE_MAGIC: u32 = 0x5510_5940;
/// `PSTREE_MAGIC` (`pstree.img`).
pub const PSTREE_MAGIC: u32 = 0x5027_3030;
/// `CORE_MAGIC` (`core-<tid>.img`).
pub const CORE_MAGIC: u32 = 0x5505_3847;
/// `MM_MAGIC` (`mm-<pid>.img`).
pub const MM_MAGIC: u32 = 0x5749_2820;
/// `PAGEMAP_MAGIC` (`pagemap-<pid>.img`).
pub const PAGEMAP_MAGIC: u32 = 0x5608_4025;
/// `STATS_MAGIC` (`stats-dump`, `stats-restore`).
pub const STATS_MAGIC: u32 = 0x5709_3306;

/// `PE_PARENT` (`criu/include/pagemap.h`): the pages are in a parent snapshot.
pub const PE_PARENT: u32 = 1 << 0;
/// `PE_LAZY`: the pages can be restored lazily.
pub const PE_LAZY: u32 = 1 << 1;
/// `PE_PRESENT`: the pages are in this dump's `pages-<id>.img`.
pub const PE_PRESENT: u32 = 1 << 2;

/// The page size CRIU dumps with on x86_64, aarch64 with 4 KiB pages and
/// s390x (`PAGE_SIZE`); `nr_pages` counts these.
pub const PAGE_SIZE: u64 = 4096;

/// `pstree_entry` (`images/pstree.proto`); `threads` (5) is not read.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PstreeEntry {
    #[prost(uint32, required, tag = "1")]
    pub pid: u32,
    #[prost(uint32, required, tag = "2")]
    pub ppid: u32,
    #[prost(uint32, required, tag = "3")]
    pub pgid: u32,
    #[prost(uint32, required, tag = "4")]
    pub sid: u32,
}

/// `core_entry` (`images/core.proto`): only `tc` (3).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CoreEntry {
    #[prost(message, optional, tag = "3")]
    pub tc: Option<TaskCoreEntry>,
}

/// `task_core_entry` (`images/core.proto`): `task_state` (1) and `comm` (6).
/// `comm` is a proto `string`, read as bytes: the kernel's comm is any 15
/// bytes a process chose, and CRIU does not check them for UTF-8.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TaskCoreEntry {
    #[prost(uint32, required, tag = "1")]
    pub task_state: u32,
    #[prost(bytes = "vec", required, tag = "6")]
    pub comm: Vec<u8>,
}

/// `mm_entry` (`images/mm.proto`): only the argument area,
/// `mm_arg_start` (8) and `mm_arg_end` (9).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MmEntry {
    #[prost(uint64, required, tag = "8")]
    pub mm_arg_start: u64,
    #[prost(uint64, required, tag = "9")]
    pub mm_arg_end: u64,
}

/// `pagemap_head` (`images/pagemap.proto`): the first message of a pagemap image.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PagemapHead {
    #[prost(uint32, required, tag = "1")]
    pub pages_id: u32,
}

/// `pagemap_entry` (`images/pagemap.proto`): every message after the head.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct PagemapEntry {
    #[prost(uint64, required, tag = "1")]
    pub vaddr: u64,
    #[prost(uint32, required, tag = "2")]
    pub nr_pages: u32,
    #[prost(bool, optional, tag = "3")]
    pub in_parent: Option<bool>,
    #[prost(uint32, optional, tag = "4")]
    pub flags: Option<u32>,
}

impl PagemapEntry {
    /// The flags as CRIU reads them (`init_compat_pagemap_entry` in
    /// `criu/pagemap.c`): images written before `flags` existed mark pages in
    /// the parent with `in_parent`, and every other entry is present.
    pub fn effective_flags(&self) -> u32 {
        let mut flags = self.flags.unwrap_or(0);
        if self.in_parent == Some(true) {
            flags |= PE_PARENT;
        } else if self.flags.is_none() {
            flags = PE_PRESENT;
        }
        flags
    }

    /// Whether the entry's pages are stored in the pages image.
    pub fn is_present(&self) -> bool {
        self.effective_flags() & PE_PRESENT != 0
    }
}

/// `stats_entry` (`images/stats.proto`): `dump` (1); `restore` (2) is not read.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct StatsEntry {
    #[prost(message, optional, tag = "1")]
    pub dump: Option<DumpStatsEntry>,
}

/// `dump_stats_entry` (`images/stats.proto`): the fields `checkpointctl
/// inspect --stats` shows. Times are in microseconds.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct DumpStatsEntry {
    #[prost(uint32, required, tag = "1")]
    pub freezing_time: u32,
    #[prost(uint32, required, tag = "2")]
    pub frozen_time: u32,
    #[prost(uint32, required, tag = "3")]
    pub memdump_time: u32,
    #[prost(uint32, required, tag = "4")]
    pub memwrite_time: u32,
    #[prost(uint64, required, tag = "5")]
    pub pages_scanned: u64,
    #[prost(uint64, required, tag = "7")]
    pub pages_written: u64,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn compat_flags_follow_criu() {
        let e = |in_parent, flags| PagemapEntry {
            vaddr: 0,
            nr_pages: 1,
            in_parent,
            flags,
        };
        assert_eq!(e(None, None).effective_flags(), PE_PRESENT);
        assert_eq!(e(Some(false), None).effective_flags(), PE_PRESENT);
        assert_eq!(e(Some(true), None).effective_flags(), PE_PARENT);
        assert_eq!(e(None, Some(PE_LAZY)).effective_flags(), PE_LAZY);
        assert!(!e(None, Some(PE_LAZY)).is_present());
        assert!(e(None, Some(PE_LAZY | PE_PRESENT)).is_present());
    }

    #[test]
    fn decodes_the_bytes_criu_writes() {
        // pstree_entry {pid 1, ppid 0, pgid 1, sid 1, threads [1]} as in a real dump
        let bytes = [0x08, 0x01, 0x10, 0x00, 0x18, 0x01, 0x20, 0x01, 0x28, 0x01];
        let e = PstreeEntry::decode(&bytes[..]).unwrap();
        assert_eq!((e.pid, e.ppid, e.pgid, e.sid), (1, 0, 1, 1));
        // task_core_entry with a comm that is not UTF-8
        let tc = TaskCoreEntry {
            task_state: 1,
            comm: vec![b's', 0xff],
        };
        let core = CoreEntry { tc: Some(tc) }.encode_to_vec();
        let back = CoreEntry::decode(core.as_slice()).unwrap();
        assert_eq!(back.tc.unwrap().comm, vec![b's', 0xff]);
    }
}
