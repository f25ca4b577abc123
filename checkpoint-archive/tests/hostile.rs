//! The reader on the synthetic archive of `kcr_testkit::criu_fixture` and on corrupt,
//! truncated and hostile variants of it: every one ends in an `Error` whose message says
//! what failed, never a panic, and nothing is written anywhere.

use std::io::Cursor;

use checkpoint_archive::{Engine, Error, Inspection, Limits, Options, TaskState, inspect};
use kcr_testkit::criu_fixture::{
    self, ARGS_OFFSET, Entry, Fixture, Kind, PAGE, STACK_PAGE, image, magic, pb, write_tar,
};
use pretty_assertions::assert_eq;

const ALL: Options = Options {
    stats: true,
    ps_tree: true,
    cmdline: true,
    limits: LIMITS,
};
const LIMITS: Limits = Limits::DEFAULT;

fn run(bytes: &[u8], options: &Options) -> Result<Inspection, Error> {
    inspect(|| Ok(Cursor::new(bytes)), options)
}

fn err(bytes: &[u8], options: &Options) -> String {
    match run(bytes, options) {
        Ok(i) => panic!("expected an error, got {i:?}"),
        Err(e) => chain(&e),
    }
}

/// The error and its causes, `: `-joined (how the plugin prints it).
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

fn with(f: impl FnOnce(&mut Vec<Entry>)) -> Vec<u8> {
    let mut entries = Fixture::sleepers().entries();
    f(&mut entries);
    write_tar(&entries)
}

fn replace(entries: &mut [Entry], path: &str, data: Vec<u8>) {
    let e = entries
        .iter_mut()
        .find(|e| e.path == path.as_bytes())
        .unwrap_or_else(|| panic!("no {path}"));
    e.data = data;
}

#[test]
fn the_fixture_reads_back_whole() {
    let fixture = Fixture::sleepers();
    let entries = fixture.entries();
    let bytes = write_tar(&entries);
    let i = run(&bytes, &ALL).unwrap();

    assert_eq!(i.container.name, "app");
    assert_eq!(i.container.engine, Engine::Containerd);
    assert_eq!(i.container.created, "2026-11-30T06:31:44Z");
    assert_eq!(
        (i.container.pod.as_str(), i.container.namespace.as_str()),
        ("sleepers", "kcr-test")
    );
    assert_eq!(i.checkpointed.as_deref(), Some("2026-11-30T06:31:46Z"));
    assert_eq!(i.config.id, fixture.container_id);
    assert_eq!(i.config.rootfs_image_name, kcr_testkit::APP_IMAGE);
    assert_eq!(i.config.oci_runtime, "io.containerd.runc.v2");

    // Sizes are the sums of the entries' sizes.
    let size = |pred: &dyn Fn(&str) -> bool| -> u64 {
        entries
            .iter()
            .filter(|e| e.kind == Kind::File && pred(&e.path_str()))
            .map(|e| e.data.len() as u64)
            .sum()
    };
    assert_eq!(
        i.sizes.checkpoint_size,
        size(&|p| p.starts_with("checkpoint/"))
    );
    assert_eq!(
        i.sizes.pages_size,
        size(&|p| p.starts_with("checkpoint/pages-"))
    );
    assert_eq!(i.sizes.pages_size, 3 * 2 * PAGE);
    assert_eq!(i.sizes.rootfs_diff_size, fixture.rootfs_diff.len() as u64);
    assert_eq!(i.sizes.archive_size, bytes.len() as u64);

    let stats = i.stats.unwrap();
    assert_eq!(
        (stats.freezing_time, stats.frozen_time, stats.memdump_time),
        (720, 74_774, 2023)
    );
    assert_eq!(
        (
            stats.memwrite_time,
            stats.pages_scanned,
            stats.pages_written
        ),
        (452, 69, 48)
    );

    let tree = i.process_tree.unwrap();
    let got: Vec<(u32, usize, &str, Option<&str>)> = tree
        .processes
        .iter()
        .map(|p| (p.pid, p.depth, p.comm.as_str(), p.cmdline.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (
                1,
                0,
                "sh",
                Some("/bin/sh -c sleep 1001 & sleep 1002 & wait")
            ),
            (8, 1, "sleep", Some("sleep 1001")),
            (9, 1, "sleep", Some("sleep 1002")),
        ]
    );
    assert!(tree.processes.iter().all(|p| p.state == TaskState::Alive));
}

#[test]
fn only_what_is_asked_for_is_read() {
    // A broken stats-dump and pstree do not matter to the plain summary.
    let bytes = with(|e| {
        replace(e, "stats-dump", b"garbage".to_vec());
        replace(e, "checkpoint/pstree.img", b"garbage".to_vec());
    });
    let i = run(&bytes, &Options::default()).unwrap();
    assert_eq!(i.container.name, "app");
    assert!(i.stats.is_none() && i.process_tree.is_none());
    // --ps-tree without --ps-tree-cmd reads no memory pages.
    let bytes = with(|e| replace(e, "checkpoint/pages-1.img", Vec::new()));
    let tree = run(
        &bytes,
        &Options {
            ps_tree: true,
            ..Options::default()
        },
    )
    .unwrap()
    .process_tree
    .unwrap();
    assert!(tree.processes.iter().all(|p| p.cmdline.is_none()));
}

#[test]
fn not_a_checkpoint_archive() {
    assert_eq!(
        err(b"", &ALL),
        "the archive has no checkpoint/ directory: not a container checkpoint archive"
    );
    let garbage = err(&[0x42; 2048], &ALL);
    assert!(
        garbage
            .starts_with("failed to read the archive as tar: numeric field was not a number: BBBB"),
        "{garbage}"
    );
    assert!(garbage.len() < 200, "{garbage}");
    let mut bad_sum = Fixture::sleepers().to_tar();
    bad_sum[0] ^= 1;
    assert_eq!(
        err(&bad_sum, &ALL),
        "failed to read the archive as tar: archive header checksum mismatch"
    );
    assert_eq!(
        err(&[0x1f, 0x8b, 8, 0, 0, 0], &ALL),
        "the archive is gzip-compressed: decompress it first (checkpoint archives written through CRI are plain tar)"
    );
    let no_config = with(|e| e.retain(|e| e.path != b"config.dump"));
    assert_eq!(
        err(&no_config, &ALL),
        "the archive has no config.dump: not a container checkpoint archive"
    );
    let no_spec = with(|e| e.retain(|e| e.path != b"spec.dump"));
    assert_eq!(
        err(&no_spec, &ALL),
        "the archive has no spec.dump: not a container checkpoint archive"
    );
    let no_stats = with(|e| e.retain(|e| e.path != b"stats-dump"));
    assert_eq!(
        err(&no_stats, &ALL),
        "the archive has no stats-dump: CRIU writes it with every dump"
    );
    let no_pstree = with(|e| e.retain(|e| e.path != b"checkpoint/pstree.img"));
    assert_eq!(
        err(&no_pstree, &ALL),
        "the archive has no checkpoint/pstree.img: CRIU writes it with every dump"
    );
    let no_core = with(|e| e.retain(|e| e.path != b"checkpoint/core-8.img"));
    assert_eq!(
        err(&no_core, &ALL),
        "the archive has no checkpoint/core-8.img: pstree.img lists that process"
    );
    let no_pages = with(|e| e.retain(|e| e.path != b"checkpoint/pages-2.img"));
    assert_eq!(
        err(&no_pages, &ALL),
        "the archive has no checkpoint/pages-2.img: a pagemap refers to it"
    );
}

#[test]
fn every_truncation_is_an_error_or_the_same_answer() {
    let whole = Fixture::sleepers().to_tar();
    let full = run(&whole, &ALL).unwrap();
    let mut errors = 0;
    for cut in (0..whole.len()).step_by(97).chain([511, 512, 513]) {
        match run(&whole[..cut], &ALL) {
            // Cut after every entry it reads (in the padding or trailing entries): the same
            // answer, except for the archive's own size.
            Ok(mut i) => {
                i.sizes.archive_size = full.sizes.archive_size;
                assert_eq!(i, full, "a cut at {cut} of {}", whole.len());
            }
            Err(e) => {
                errors += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(errors > 400, "{errors}");
    // A cut inside an entry's data names the entry and the sizes.
    let pos = whole
        .windows(b"spec.dump".len())
        .position(|w| w == b"spec.dump")
        .unwrap();
    let message = err(&whole[..pos + 512 + 100], &ALL);
    assert!(
        message.starts_with("archive entry \"spec.dump\" declares ")
            && message.ends_with(
                " but the archive ends 100 bytes after its header: the archive is truncated or corrupt"
            ),
        "{message}"
    );
}

#[test]
fn a_huge_declared_size_is_refused_without_reading() {
    let mut bytes = write_tar(&[Entry::dir("checkpoint/")])[..512].to_vec();
    bytes.extend(criu_fixture::header_only("checkpoint/pages-1.img", 8 << 30));
    bytes.extend([0u8; 1024]);
    assert_eq!(
        err(&bytes, &ALL),
        "archive entry \"checkpoint/pages-1.img\" declares 8589934592 bytes but the archive ends 1024 bytes after its header: the archive is truncated or corrupt"
    );
}

#[test]
fn hostile_paths_and_entry_types_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("evil-absolute");
    let absolute = outside.to_str().unwrap().to_owned();
    let cases: Vec<(Entry, String)> = vec![
        (
            Entry::file(&absolute, b"x".to_vec()),
            format!("archive entry {absolute:?} is not a safe relative path: it is absolute"),
        ),
        (
            Entry::file("../evil-parent", b"x".to_vec()),
            "archive entry \"../evil-parent\" is not a safe relative path: it climbs out with ..".into(),
        ),
        (
            Entry::file("checkpoint/../../evil-parent", b"x".to_vec()),
            "archive entry \"checkpoint/../../evil-parent\" is not a safe relative path: it climbs out with ..".into(),
        ),
        (
            Entry::with_kind("checkpoint/core-1.img", Kind::Symlink("/etc/shadow".into())),
            "archive entry \"checkpoint/core-1.img\" is a symbolic link (to \"/etc/shadow\"): checkpoint archives hold no links".into(),
        ),
        (
            Entry::with_kind("spec.dump", Kind::HardLink("/etc/passwd".into())),
            "archive entry \"spec.dump\" is a hard link (to \"/etc/passwd\"): checkpoint archives hold no links".into(),
        ),
        (
            Entry::with_kind("checkpoint/fifo", Kind::Fifo),
            "archive entry \"checkpoint/fifo\" is a FIFO: checkpoint archives hold only files and directories".into(),
        ),
        (
            Entry::with_kind("dev-null", Kind::CharDevice),
            "archive entry \"dev-null\" is a character device: checkpoint archives hold only files and directories".into(),
        ),
        (
            Entry {
                path: b"checkpoint/\xff\xfe".to_vec(),
                kind: Kind::File,
                data: Vec::new(),
            },
            "archive entry \"checkpoint/\u{fffd}\u{fffd}\" is not a safe relative path: it is not UTF-8".into(),
        ),
    ];
    let cwd_before = std::fs::read_dir(".").unwrap().count();
    for (entry, expected) in cases {
        let bytes = with(|e| e.insert(1, entry.clone()));
        assert_eq!(err(&bytes, &ALL), expected);
    }
    // Nothing was written: not the absolute path, not beside the working directory.
    assert!(!outside.exists());
    assert!(!std::path::Path::new("../evil-parent").exists());
    assert_eq!(std::fs::read_dir(".").unwrap().count(), cwd_before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_long_name_over_the_header_limit_is_refused_unread() {
    // A GNU long-name record of 2 MiB: the tar crate would read it whole into memory.
    let mut bytes = write_tar(&[Entry::dir("checkpoint/")])[..512].to_vec();
    criu_fixture::long_name(&mut bytes, &vec![b'a'; 2 << 20]);
    bytes.extend(criu_fixture::header_only("config.dump", 0));
    bytes.extend([0u8; 1024]);
    assert_eq!(
        err(&bytes, &ALL),
        "a tar header of the archive (with its PAX or GNU long-name records) is larger than 1048576 bytes"
    );
    // Long names under the limit are fine (and checked like any other path).
    let long = format!("checkpoint/{}", "x".repeat(300));
    let ok = with(|e| e.insert(1, Entry::file(&long, b"1".to_vec())));
    assert!(run(&ok, &ALL).is_ok());
    let long_escape = format!("{}/../../../etc/x", "y".repeat(300));
    let bad = with(|e| e.insert(1, Entry::file(&long_escape, b"1".to_vec())));
    assert!(err(&bad, &ALL).ends_with("is not a safe relative path: it climbs out with .."));
}

#[test]
fn duplicates_and_oversized_metadata_are_refused() {
    let dup = with(|e| e.push(Entry::file("./config.dump", b"{}".to_vec())));
    assert_eq!(
        err(&dup, &ALL),
        "archive entry \"config.dump\" appears more than once"
    );
    let dup_image = with(|e| e.push(Entry::file("checkpoint/pstree.img", Vec::new())));
    assert_eq!(
        err(&dup_image, &ALL),
        "archive entry \"checkpoint/pstree.img\" appears more than once"
    );
    let small = Options {
        limits: Limits {
            max_json: 100,
            ..LIMITS
        },
        ..ALL
    };
    let message = err(&Fixture::sleepers().to_tar(), &small);
    assert!(
        message.starts_with("archive entry \"config.dump\" is ")
            && message.ends_with(" bytes, more than the 100 bytes accepted"),
        "{message}"
    );
    let few = Options {
        limits: Limits {
            max_entries: 5,
            ..LIMITS
        },
        ..ALL
    };
    assert_eq!(
        err(&Fixture::sleepers().to_tar(), &few),
        "the archive has more than 5 entries"
    );
}

#[test]
fn bad_json_is_named() {
    let bad = with(|e| replace(e, "config.dump", b"{\"id\": 42}".to_vec()));
    assert_eq!(
        err(&bad, &ALL),
        "config.dump is not valid JSON of the expected shape: invalid type: integer `42`, expected a string at line 1 column 9"
    );
    // Deep nesting: skipped without recursion where it is not read, refused at once where
    // a map of strings is expected; never the end of the stack.
    let deep = |key: &str| {
        format!(
            "{{\"{key}\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
    };
    let skipped = with(|e| replace(e, "spec.dump", deep("x").into_bytes()));
    assert_eq!(run(&skipped, &ALL).unwrap().container.name, "");
    let bad = with(|e| replace(e, "spec.dump", deep("annotations").into_bytes()));
    assert_eq!(
        err(&bad, &ALL),
        "spec.dump is not valid JSON of the expected shape: invalid type: sequence, expected a map at line 1 column 16"
    );
    let bad_time = with(|e| {
        let mut f = Fixture::sleepers();
        f.created = "not a time".into();
        replace(e, "config.dump", f.config_dump());
    });
    assert_eq!(
        err(&bad_time, &ALL),
        "config.dump has an invalid createdTime \"not a time\" (not an RFC 3339 time)"
    );
}

#[test]
fn corrupt_criu_images_are_named() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "checkpoint/core-1.img",
            image(magic::COMMON, magic::MM, &[]),
            "invalid CRIU image checkpoint/core-1.img: its magic is 0x57492820, expected 0x55053847 (CORE)",
        ),
        (
            "checkpoint/core-1.img",
            Vec::new(),
            "invalid CRIU image checkpoint/core-1.img: it ends inside the magic",
        ),
        (
            "checkpoint/pstree.img",
            image(magic::COMMON, magic::PSTREE, &[vec![0xff; 7]]),
            "invalid CRIU image checkpoint/pstree.img: it holds something that is not a pstree_entry message: failed to decode Protobuf message: invalid varint",
        ),
        (
            "checkpoint/pstree.img",
            {
                let mut b = image(magic::COMMON, magic::PSTREE, &[]);
                b.extend(u32::MAX.to_le_bytes());
                b
            },
            "invalid CRIU image checkpoint/pstree.img: it holds a 4294967295-byte message, more than the 8388608 bytes accepted",
        ),
        (
            "checkpoint/pstree.img",
            {
                let mut b = image(magic::COMMON, magic::PSTREE, &[]);
                b.extend(100u32.to_le_bytes());
                b.extend([0x08, 0x01]);
                b
            },
            "invalid CRIU image checkpoint/pstree.img: it ends inside a message",
        ),
        (
            "stats-dump",
            image(magic::SERVICE, magic::STATS, &[vec![]]),
            "stats-dump holds no dump statistics",
        ),
        (
            "stats-dump",
            image(magic::SERVICE, magic::CORE, &[vec![]]),
            "invalid CRIU image stats-dump: its magic is 0x55053847, expected 0x57093306 (STATS)",
        ),
        (
            "checkpoint/mm-1.img",
            {
                let mut mm = Vec::new();
                pb::uint(&mut mm, 8, 0x2000);
                pb::uint(&mut mm, 9, 0x1000);
                image(magic::COMMON, magic::MM, &[mm])
            },
            "invalid CRIU image checkpoint/mm-1.img: mm_arg_end 0x1000 precedes mm_arg_start 0x2000",
        ),
        (
            "checkpoint/pagemap-1.img",
            {
                let mut head = Vec::new();
                pb::uint(&mut head, 1, 1);
                let entry = |vaddr: u64| {
                    let mut m = Vec::new();
                    pb::uint(&mut m, 1, vaddr);
                    pb::uint(&mut m, 2, 1);
                    m
                };
                image(
                    magic::COMMON,
                    magic::PAGEMAP,
                    &[head, entry(0x9000), entry(0x1000)],
                )
            },
            "invalid CRIU image checkpoint/pagemap-1.img: pagemap entries overlap or are out of order at 0x1000",
        ),
    ];
    for (path, data, expected) in cases {
        let bytes = with(|e| replace(e, path, data));
        assert_eq!(err(&bytes, &ALL), expected, "{path}");
    }
}

fn pstree(pairs: &[(u32, u32)]) -> Vec<u8> {
    let entries: Vec<Vec<u8>> = pairs
        .iter()
        .map(|&(pid, ppid)| {
            let mut m = Vec::new();
            pb::uint(&mut m, 1, u64::from(pid));
            pb::uint(&mut m, 2, u64::from(ppid));
            pb::uint(&mut m, 3, 1);
            pb::uint(&mut m, 4, 1);
            m
        })
        .collect();
    image(magic::COMMON, magic::PSTREE, &entries)
}

#[test]
fn malformed_process_trees_are_named() {
    let prefix = "the process tree in checkpoint/pstree.img is invalid: ";
    for (pairs, expected) in [
        (
            vec![(1, 0), (8, 9), (9, 8)],
            "processes 8, 9 do not descend from the root (a cycle)",
        ),
        (
            vec![(1, 0), (8, 77)],
            "process 8 has parent 77, which is not in the tree",
        ),
        (vec![(1, 0), (8, 0)], "PIDs 1 and 8 both have no parent"),
        (
            vec![(8, 1), (1, 8)],
            "no process is without a parent (no root)",
        ),
    ] {
        let bytes = with(|e| replace(e, "checkpoint/pstree.img", pstree(&pairs)));
        assert_eq!(err(&bytes, &ALL), format!("{prefix}{expected}"));
    }
    let few = Options {
        limits: Limits {
            max_processes: 2,
            ..LIMITS
        },
        ..ALL
    };
    assert_eq!(
        err(&Fixture::sleepers().to_tar(), &few),
        "the archive has more than 2 processes"
    );
    let shallow = Options {
        limits: Limits {
            max_tree_depth: 0,
            ..LIMITS
        },
        ..ALL
    };
    assert_eq!(
        err(&Fixture::sleepers().to_tar(), &shallow),
        "the process tree is deeper than 0 levels"
    );
}

#[test]
fn command_lines_follow_the_pagemap_whatever_the_order() {
    // pagemap before mm: kept, then resolved when mm arrives.
    let bytes = with(|e| {
        let at = e
            .iter()
            .position(|x| x.path == b"checkpoint/pagemap-8.img")
            .unwrap();
        let pagemap = e.remove(at);
        e.insert(1, pagemap);
    });
    let tree = run(&bytes, &ALL).unwrap().process_tree.unwrap();
    assert_eq!(tree.processes[1].cmdline.as_deref(), Some("sleep 1001"));

    // pages before everything: located in the stream, read afterwards by position.
    let bytes = with(|e| {
        let at = e
            .iter()
            .position(|x| x.path == b"checkpoint/pages-3.img")
            .unwrap();
        let pages = e.remove(at);
        e.insert(1, pages);
    });
    let tree = run(&bytes, &ALL).unwrap().process_tree.unwrap();
    assert_eq!(tree.processes[2].cmdline.as_deref(), Some("sleep 1002"));

    // Cut at the limit, and marked so.
    let cut = Options {
        limits: Limits {
            max_cmdline: 10,
            ..LIMITS
        },
        ..ALL
    };
    let tree = run(&Fixture::sleepers().to_tar(), &cut)
        .unwrap()
        .process_tree
        .unwrap();
    assert_eq!(tree.processes[0].cmdline.as_deref(), Some("/bin/sh -c"));
    assert!(tree.processes[0].cmdline_truncated);
    // "sleep\01001\0" is 11 bytes: at 10 only the final NUL is cut.
    assert_eq!(tree.processes[1].cmdline.as_deref(), Some("sleep 1001"));
    assert!(tree.processes[1].cmdline_truncated);

    // A pagemap that places the arguments past the end of the pages image.
    let bytes = with(|e| replace(e, "checkpoint/pages-1.img", vec![0; PAGE as usize]));
    assert_eq!(
        err(&bytes, &ALL),
        format!(
            "checkpoint/pages-1.img is 4096 bytes but pagemap-1.img places the command line of process 1 at bytes {}..{}",
            PAGE + ARGS_OFFSET,
            PAGE + ARGS_OFFSET + 42
        )
    );
    let _ = STACK_PAGE;
}

#[test]
fn dead_processes_get_no_command_line() {
    let mut f = Fixture::sleepers();
    f.processes[2].state = 6;
    let tree = run(&f.to_tar(), &ALL).unwrap().process_tree.unwrap();
    assert_eq!(tree.processes[2].state, TaskState::Zombie);
    assert_eq!(tree.processes[2].cmdline, None);
}

/// A real file with a 4 GiB hole as its pages image, the arguments in its last page: read
/// by seeking, not by streaming 4 GiB, and only the argument bytes are held.
#[test]
fn a_sparse_four_gib_pages_image_is_skipped_by_seeking() {
    let fixture = Fixture::sleepers();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.tar");
    let mut file = std::fs::File::create(&path).unwrap();
    let pages_1 = criu_fixture::write_with_sparse_pages(&fixture, &mut file, 1 << 20).unwrap();
    drop(file);
    assert_eq!(pages_1, ((1 << 20) + 1) * PAGE);

    let started = std::time::Instant::now();
    let i = checkpoint_archive::inspect_path(&path, &ALL).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(i.sizes.pages_size, 4 * PAGE + pages_1);
    let root = &i.process_tree.unwrap().processes[0];
    assert_eq!(
        root.cmdline.as_deref(),
        Some("/bin/sh -c sleep 1001 & sleep 1002 & wait")
    );
}

#[test]
fn only_regular_files_are_archives() {
    let dir = tempfile::tempdir().unwrap();
    let e = checkpoint_archive::inspect_path(dir.path(), &ALL).unwrap_err();
    assert_eq!(e.to_string(), "the archive is not a regular file");
    let e = checkpoint_archive::inspect_path("/dev/null".as_ref(), &ALL).unwrap_err();
    assert_eq!(e.to_string(), "the archive is not a regular file");
    let e = checkpoint_archive::inspect_path(&dir.path().join("none"), &ALL).unwrap_err();
    assert_eq!(
        chain(&e),
        "failed to open the archive: No such file or directory (os error 2)"
    );
}

/// A 2 GiB GNU long name (a hole on disk): refused after 1 MiB of it was read.
#[test]
fn a_sparse_two_gib_long_name_is_refused_after_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.tar");
    let mut file = std::fs::File::create(&path).unwrap();
    criu_fixture::write_long_name_bomb(&mut file, 2 << 30).unwrap();
    drop(file);
    let e = checkpoint_archive::inspect_path(&path, &ALL).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a tar header of the archive (with its PAX or GNU long-name records) is larger than 1048576 bytes"
    );
}
