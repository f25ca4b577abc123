//! `checkpoint_archive::inspect`, the reader behind `kubectl checkpoint inspect`, on
//! archives a hostile party controls. The first input byte is a mode:
//!
//! * bit 0 clear: the rest of the input is the archive itself (any bytes: tar headers,
//!   PAX and GNU records, truncation);
//! * bit 0 set: the synthetic archive of `kcr_testkit::criu_fixture` (a real layout
//!   with valid CRIU images), changed by records `[slot u8][len u16 le][bytes]`: slot
//!   `s` picks entry `s % N`; with bit 7 set the bytes replace its path, else its data.
//!   This lets the fuzzer reach deep into each CRIU image, the JSON dumps, the process
//!   tree and the command-line reads.
//!
//! Bit 1 asks for the command lines too (a second, positioned read).
//!
//! Invariants: nothing panics; no error message is longer than 2 KiB whatever the
//! input; a success respects the limits (processes, depth, command-line length) and
//! its sizes add up.
#![no_main]

use std::io::Cursor;

use checkpoint_archive::{Limits, Options, inspect};
use kcr_testkit::criu_fixture::{Fixture, write_tar};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_entries: 1_000,
    max_tar_header: 64 << 10,
    max_json: 256 << 10,
    max_message: 256 << 10,
    max_processes: 256,
    max_tree_depth: 32,
    max_pagemap_entries: 4_096,
    max_cmdline: 4 << 10,
    max_cmdline_total: 16 << 10,
};

fn structured(records: &[u8]) -> Vec<u8> {
    let mut entries = Fixture::sleepers().entries();
    let mut rest = records;
    while let [slot, lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        let n = entries.len();
        let entry = &mut entries[usize::from(*slot & 0x7f) % n];
        if slot & 0x80 != 0 {
            entry.path = bytes.to_vec();
        } else {
            entry.data = bytes.to_vec();
        }
        rest = next;
    }
    write_tar(&entries)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let archive = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        structured(rest)
    };
    let options = Options {
        stats: true,
        ps_tree: true,
        cmdline: mode & 2 != 0,
        limits: LIMITS,
    };
    match inspect(|| Ok(Cursor::new(archive.as_slice())), &options) {
        Err(e) => {
            let message = chain(&e);
            assert!(message.len() < 2048, "{} bytes: {message}", message.len());
        }
        Ok(i) => {
            assert!(i.sizes.pages_size <= i.sizes.checkpoint_size);
            assert_eq!(i.sizes.archive_size, archive.len() as u64);
            let tree = i.process_tree.expect("asked for");
            assert!(!tree.processes.is_empty());
            assert!(tree.processes.len() <= LIMITS.max_processes);
            for p in &tree.processes {
                assert!(p.depth <= LIMITS.max_tree_depth);
                assert!(p.children.iter().all(|&c| c < tree.processes.len()));
                if let Some(line) = &p.cmdline {
                    // lossy UTF-8 turns one byte into at most three
                    assert!(line.len() as u64 <= 3 * LIMITS.max_cmdline);
                    assert!(options.cmdline);
                }
            }
            let _ = checkpoint_archive::display::byte_to_string(i.sizes.checkpoint_size);
            if let Some(s) = i.stats {
                let _ = checkpoint_archive::display::format_time(s.frozen_time);
            }
        }
    }
});
