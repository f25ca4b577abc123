//! A small checkpoint archive laid out as containerd 2.1 writes one, with real CRIU images
//! (magic, length-prefixed protobuf; encoded here by hand, independently of the decoder in
//! `checkpoint-archive`), for the tests of code that reads archives and for fuzz seeds.
//!
//! [`Fixture::sleepers`] is a `/bin/sh -c 'sleep 1001 & sleep 1002 & wait'` container, the
//! shape of the real archive the CRI test writes. [`Fixture::entries`] gives the tar entries
//! so hostile variants can change, add or drop any of them; [`write_tar`] writes entries
//! exactly as given (absolute and `..` paths, links and devices included).

/// `IMG_COMMON_MAGIC`, `IMG_SERVICE_MAGIC` and the image magics (CRIU `criu/include/magic.h`).
pub mod magic {
    pub const COMMON: u32 = 0x5456_4319;
    pub const SERVICE: u32 = 0x5510_5940;
    pub const INVENTORY: u32 = 0x5831_3116;
    pub const PSTREE: u32 = 0x5027_3030;
    pub const CORE: u32 = 0x5505_3847;
    pub const MM: u32 = 0x5749_2820;
    pub const PAGEMAP: u32 = 0x5608_4025;
    pub const STATS: u32 = 0x5709_3306;
}

/// `PE_PRESENT` (CRIU `criu/include/pagemap.h`).
pub const PE_PRESENT: u64 = 1 << 2;
/// CRIU's page size on x86_64.
pub const PAGE: u64 = 4096;

/// Protobuf encoding by hand: varint and length-delimited fields.
pub mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A varint field (wire type 0).
    pub fn uint(out: &mut Vec<u8>, tag: u32, v: u64) {
        varint(out, u64::from(tag) << 3);
        varint(out, v);
    }

    /// A length-delimited field (wire type 2).
    pub fn bytes(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
        varint(out, (u64::from(tag) << 3) | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// An image: `first` (the common or service magic), `magic`, then each message prefixed
/// with its little-endian u32 length.
pub fn image(first: u32, magic: u32, messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = first.to_le_bytes().to_vec();
    out.extend(magic.to_le_bytes());
    for m in messages {
        out.extend((m.len() as u32).to_le_bytes());
        out.extend(m);
    }
    out
}

/// One process of the fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// CRIU task state: 1 alive, 2 dead, 3 stopped, 6 zombie.
    pub state: u32,
    pub args: Vec<String>,
}

impl Process {
    pub fn new(pid: u32, ppid: u32, comm: &str, args: &[&str]) -> Self {
        Self {
            pid,
            ppid,
            comm: comm.into(),
            state: 1,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// The argument area as the kernel lays it out: each argument NUL-terminated.
    pub fn arg_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for a in &self.args {
            out.extend(a.as_bytes());
            out.push(0);
        }
        out
    }
}

/// CRIU's dump statistics in microseconds and pages (`images/stats.proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub freezing_time: u32,
    pub frozen_time: u32,
    pub memdump_time: u32,
    pub memwrite_time: u32,
    pub pages_scanned: u64,
    pub pages_written: u64,
}

/// The archive's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixture {
    pub container_id: String,
    pub container_name: String,
    pub pod: String,
    pub namespace: String,
    pub pod_uid: String,
    pub image: String,
    pub runtime: String,
    pub created: String,
    pub checkpointed: String,
    pub processes: Vec<Process>,
    pub stats: Stats,
    pub rootfs_diff: Vec<u8>,
}

/// Where the fixture's argument page sits in each process's address space.
pub const STACK_PAGE: u64 = 0x7ffd_5000;
/// Offset of the arguments in that page.
pub const ARGS_OFFSET: u64 = 0xe10;

impl Fixture {
    /// `sh -c 'sleep 1001 & sleep 1002 & wait'` with its two children.
    pub fn sleepers() -> Self {
        Self {
            container_id: "f311a40eb5b91c8f2b12c9e18d9d16b7d33f070d69387fd3d1fa47fcfe857733".into(),
            container_name: "app".into(),
            pod: "sleepers".into(),
            namespace: "kcr-test".into(),
            pod_uid: "3ec88b1b-b699-4b34-9a1a-55f3670fe997".into(),
            image: crate::APP_IMAGE.into(),
            runtime: "io.containerd.runc.v2".into(),
            created: "2026-11-30T06:31:44.852446719Z".into(),
            checkpointed: "2026-11-30T06:31:46.24958821Z".into(),
            processes: vec![
                Process::new(
                    1,
                    0,
                    "sh",
                    &["/bin/sh", "-c", "sleep 1001 & sleep 1002 & wait"],
                ),
                Process::new(8, 1, "sleep", &["sleep", "1001"]),
                Process::new(9, 1, "sleep", &["sleep", "1002"]),
            ],
            stats: Stats {
                freezing_time: 720,
                frozen_time: 74_774,
                memdump_time: 2023,
                memwrite_time: 452,
                pages_scanned: 69,
                pages_written: 48,
            },
            rootfs_diff: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        }
    }

    pub fn config_dump(&self) -> Vec<u8> {
        let config = serde_json::json!({
            "id": self.container_id,
            "name": format!("{}_{}_{}_{}_0", self.container_name, self.pod, self.namespace, self.pod_uid),
            "rootfsImage": self.image,
            "rootfsImageName": self.image,
            "runtime": self.runtime,
            "createdTime": self.created,
            "checkpointedTime": self.checkpointed,
            "restoredTime": "0001-01-01T00:00:00Z",
            "restored": false,
        });
        serde_json::to_vec(&config).unwrap_or_default()
    }

    pub fn spec_dump(&self) -> Vec<u8> {
        let spec = serde_json::json!({
            "ociVersion": "1.2.1",
            "process": {"args": self.processes.first().map(|p| p.args.clone()).unwrap_or_default()},
            "root": {"path": "rootfs"},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "annotations": {
                "io.kubernetes.cri.container-name": self.container_name,
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.image-name": self.image,
                "io.kubernetes.cri.sandbox-name": self.pod,
                "io.kubernetes.cri.sandbox-namespace": self.namespace,
                "io.kubernetes.cri.sandbox-uid": self.pod_uid,
            },
        });
        serde_json::to_vec_pretty(&spec).unwrap_or_default()
    }

    pub fn stats_dump(&self) -> Vec<u8> {
        let s = self.stats;
        let mut dump = Vec::new();
        pb::uint(&mut dump, 1, u64::from(s.freezing_time));
        pb::uint(&mut dump, 2, u64::from(s.frozen_time));
        pb::uint(&mut dump, 3, u64::from(s.memdump_time));
        pb::uint(&mut dump, 4, u64::from(s.memwrite_time));
        pb::uint(&mut dump, 5, s.pages_scanned);
        pb::uint(&mut dump, 6, 0);
        pb::uint(&mut dump, 7, s.pages_written);
        pb::uint(&mut dump, 9, 0);
        let mut entry = Vec::new();
        pb::bytes(&mut entry, 1, &dump);
        image(magic::SERVICE, magic::STATS, &[entry])
    }

    pub fn pstree_img(&self) -> Vec<u8> {
        let entries: Vec<Vec<u8>> = self
            .processes
            .iter()
            .map(|p| {
                let mut m = Vec::new();
                pb::uint(&mut m, 1, u64::from(p.pid));
                pb::uint(&mut m, 2, u64::from(p.ppid));
                pb::uint(&mut m, 3, 1);
                pb::uint(&mut m, 4, 1);
                pb::uint(&mut m, 5, u64::from(p.pid));
                m
            })
            .collect();
        image(magic::COMMON, magic::PSTREE, &entries)
    }

    pub fn core_img(p: &Process) -> Vec<u8> {
        let mut tc = Vec::new();
        pb::uint(&mut tc, 1, u64::from(p.state));
        pb::uint(&mut tc, 2, 0);
        pb::uint(&mut tc, 3, 0);
        pb::uint(&mut tc, 4, 0x40_0100);
        pb::uint(&mut tc, 5, 0);
        pb::bytes(&mut tc, 6, p.comm.as_bytes());
        let mut thread_info = Vec::new();
        pb::bytes(&mut thread_info, 1, &[0u8; 64]);
        let mut core = Vec::new();
        pb::uint(&mut core, 1, 1); // mtype X86_64
        pb::bytes(&mut core, 2, &thread_info);
        pb::bytes(&mut core, 3, &tc);
        image(magic::COMMON, magic::CORE, &[core])
    }

    pub fn mm_img(p: &Process) -> Vec<u8> {
        let args = STACK_PAGE + ARGS_OFFSET;
        let mut mm = Vec::new();
        for (tag, v) in [
            (1u32, 0x40_0000u64),
            (2, 0x4f_0000),
            (3, 0x50_0000),
            (4, 0x51_0000),
        ] {
            pb::uint(&mut mm, tag, v);
        }
        pb::uint(&mut mm, 5, STACK_PAGE);
        pb::uint(&mut mm, 6, 0x60_0000);
        pb::uint(&mut mm, 7, 0x60_1000);
        pb::uint(&mut mm, 8, args);
        pb::uint(&mut mm, 9, args + p.arg_bytes().len() as u64);
        pb::uint(&mut mm, 10, args + p.arg_bytes().len() as u64);
        pb::uint(&mut mm, 11, args + p.arg_bytes().len() as u64 + 16);
        pb::uint(&mut mm, 12, 1);
        for (start, end) in [
            (0x40_0000u64, 0x4f_0000u64),
            (STACK_PAGE - 0x1_0000, STACK_PAGE + PAGE),
        ] {
            let mut vma = Vec::new();
            pb::uint(&mut vma, 1, start);
            pb::uint(&mut vma, 2, end);
            pb::bytes(&mut mm, 14, &vma);
        }
        image(magic::COMMON, magic::MM, &[mm])
    }

    /// The pages id of a process: its index + 1 (CRIU numbers them in dump order).
    pub fn pages_id(&self, p: &Process) -> u32 {
        self.processes
            .iter()
            .position(|q| q.pid == p.pid)
            .map_or(1, |i| i as u32 + 1)
    }

    /// Two present entries: one code page, then the stack page with the arguments.
    pub fn pagemap_img(&self, p: &Process) -> Vec<u8> {
        let mut head = Vec::new();
        pb::uint(&mut head, 1, u64::from(self.pages_id(p)));
        let entry = |vaddr: u64, pages: u64| {
            let mut m = Vec::new();
            pb::uint(&mut m, 1, vaddr);
            pb::uint(&mut m, 2, pages);
            pb::uint(&mut m, 4, PE_PRESENT);
            m
        };
        image(
            magic::COMMON,
            magic::PAGEMAP,
            &[head, entry(0x40_0000, 1), entry(STACK_PAGE, 1)],
        )
    }

    /// A pages image: the code page, then the stack page with the arguments in place.
    pub fn pages_img(p: &Process) -> Vec<u8> {
        let mut pages = vec![0xccu8; PAGE as usize];
        let mut stack = vec![0u8; PAGE as usize];
        let args = p.arg_bytes();
        let at = ARGS_OFFSET as usize;
        let end = (at + args.len()).min(stack.len());
        stack[at..end].copy_from_slice(&args[..end - at]);
        pages.extend(stack);
        pages
    }

    /// The entries in containerd's order (a sorted walk of the checkpoint directory, then
    /// the metadata files).
    pub fn entries(&self) -> Vec<Entry> {
        let mut cp: Vec<(String, Vec<u8>)> = vec![(
            "inventory.img".into(),
            image(magic::COMMON, magic::INVENTORY, &[vec![0x08, 0x02]]),
        )];
        for p in &self.processes {
            cp.push((format!("core-{}.img", p.pid), Self::core_img(p)));
            cp.push((format!("mm-{}.img", p.pid), Self::mm_img(p)));
            cp.push((format!("pagemap-{}.img", p.pid), self.pagemap_img(p)));
            cp.push((
                format!("pages-{}.img", self.pages_id(p)),
                Self::pages_img(p),
            ));
        }
        cp.push(("pstree.img".into(), self.pstree_img()));
        cp.sort();
        let mut entries = vec![Entry::dir("checkpoint/")];
        entries.extend(
            cp.into_iter()
                .map(|(name, data)| Entry::file(&format!("checkpoint/{name}"), data)),
        );
        entries.push(Entry::file("config.dump", self.config_dump()));
        entries.push(Entry::file(
            "dump.log",
            b"(00.000000) Dumping finished successfully\n".to_vec(),
        ));
        entries.push(Entry::file("rootfs-diff.tar", self.rootfs_diff.clone()));
        entries.push(Entry::file("spec.dump", self.spec_dump()));
        entries.push(Entry::file("stats-dump", self.stats_dump()));
        entries.push(Entry::file("status", b"{\"Version\":\"v1\"}".to_vec()));
        entries
    }

    /// The archive's bytes.
    pub fn to_tar(&self) -> Vec<u8> {
        write_tar(&self.entries())
    }
}

/// What a tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink(String),
    HardLink(String),
    Fifo,
    CharDevice,
}

/// One tar entry, written as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub data: Vec<u8>,
}

impl Entry {
    pub fn file(path: &str, data: Vec<u8>) -> Self {
        Self {
            path: path.as_bytes().to_vec(),
            kind: Kind::File,
            data,
        }
    }

    pub fn dir(path: &str) -> Self {
        Self {
            path: path.as_bytes().to_vec(),
            kind: Kind::Dir,
            data: Vec::new(),
        }
    }

    pub fn with_kind(path: &str, kind: Kind) -> Self {
        Self {
            path: path.as_bytes().to_vec(),
            kind,
            data: Vec::new(),
        }
    }

    pub fn path_str(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// A GNU tar header for `path` (written raw: the `tar` crate's setters refuse hostile
/// paths); names over 100 bytes go in a GNU long-name entry before it.
fn header_for(out: &mut Vec<u8>, path: &[u8], kind: &Kind, size: u64) {
    let mut h = tar::Header::new_gnu();
    h.set_mode(if matches!(kind, Kind::Dir) {
        0o700
    } else {
        0o644
    });
    h.set_mtime(1_796_020_306);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_entry_type(match kind {
        Kind::File => tar::EntryType::Regular,
        Kind::Dir => tar::EntryType::Directory,
        Kind::Symlink(_) => tar::EntryType::Symlink,
        Kind::HardLink(_) => tar::EntryType::Link,
        Kind::Fifo => tar::EntryType::Fifo,
        Kind::CharDevice => tar::EntryType::Char,
    });
    if let Kind::Symlink(t) | Kind::HardLink(t) = kind {
        let name = &mut h.as_old_mut().linkname;
        let n = t.len().min(name.len());
        name[..n].copy_from_slice(&t.as_bytes()[..n]);
    }
    if path.len() > 100 {
        long_name(out, path);
    }
    let name = &mut h.as_old_mut().name;
    let n = path.len().min(name.len());
    name[..n].copy_from_slice(&path[..n]);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
}

/// A GNU `././@LongLink` entry holding `name`.
pub fn long_name(out: &mut Vec<u8>, name: &[u8]) {
    let mut h = tar::Header::new_gnu();
    let link = b"././@LongLink";
    h.as_old_mut().name[..link.len()].copy_from_slice(link);
    h.set_mode(0o644);
    h.set_size(name.len() as u64 + 1);
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(name);
    out.push(0);
    pad(out);
}

/// Zero bytes up to the next 512-byte block.
pub fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// A tar of `entries`, as given, with the two zero blocks that end an archive.
pub fn write_tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        header_for(&mut out, &e.path, &e.kind, e.data.len() as u64);
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Just a header declaring `size` bytes for `path`, no data (for huge declared sizes and
/// sparse files: write the data, or a hole, yourself, then [`pad`]).
pub fn header_only(path: &str, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    header_for(&mut out, path.as_bytes(), &Kind::File, size);
    out
}

/// Write `fixture` to `file` with a `pages-1.img` of `hole_pages` pages of nothing (a
/// file-system hole: the archive is that large but takes no disk) followed by the stack
/// page holding process 1's arguments; `pagemap-1.img` maps the hole as one present entry
/// before the stack page, so the arguments sit at the very end of the image. Returns the
/// size of `pages-1.img`.
pub fn write_with_sparse_pages(
    fixture: &Fixture,
    file: &mut std::fs::File,
    hole_pages: u64,
) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom, Write};

    let first = fixture
        .processes
        .first()
        .ok_or_else(|| std::io::Error::other("no process"))?;
    let stack = STACK_PAGE << 8; // above the hole's mapping
    let args = stack + ARGS_OFFSET;
    let mut head = Vec::new();
    pb::uint(&mut head, 1, 1);
    let entry = |vaddr: u64, n: u64| {
        let mut m = Vec::new();
        pb::uint(&mut m, 1, vaddr);
        pb::uint(&mut m, 2, n);
        pb::uint(&mut m, 4, PE_PRESENT);
        m
    };
    let pagemap = image(
        magic::COMMON,
        magic::PAGEMAP,
        &[head, entry(0x1_0000_0000, hole_pages), entry(stack, 1)],
    );
    let mut mm = Vec::new();
    pb::uint(&mut mm, 8, args);
    pb::uint(&mut mm, 9, args + first.arg_bytes().len() as u64);
    let mm = image(magic::COMMON, magic::MM, &[mm]);

    let mut before = Vec::new();
    for mut e in fixture.entries() {
        match e.path.as_slice() {
            b"checkpoint/pages-1.img" => continue,
            b"checkpoint/pagemap-1.img" => e.data = pagemap.clone(),
            b"checkpoint/mm-1.img" => e.data = mm.clone(),
            _ => {}
        }
        let mut one = write_tar(std::slice::from_ref(&e));
        one.truncate(one.len() - 1024);
        before.extend(one);
    }
    file.write_all(&before)?;
    let size = (hole_pages + 1) * PAGE;
    file.write_all(&header_only("checkpoint/pages-1.img", size))?;
    let hole = i64::try_from(hole_pages * PAGE).map_err(std::io::Error::other)?;
    file.seek(SeekFrom::Current(hole))?;
    file.write_all(&Fixture::pages_img(first)[PAGE as usize..])?;
    file.write_all(&[0u8; 1024])?;
    Ok(size)
}

/// Write an archive whose first entry is a GNU long-name record of `name_len` bytes of
/// nothing (a hole), then a file entry: a tar reader that holds long names in memory
/// holds all of it.
pub fn write_long_name_bomb(file: &mut std::fs::File, name_len: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};

    let mut h = tar::Header::new_gnu();
    let link = b"././@LongLink";
    h.as_old_mut().name[..link.len()].copy_from_slice(link);
    h.set_mode(0o644);
    h.set_size(name_len);
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_cksum();
    file.write_all(h.as_bytes())?;
    let padded = name_len.div_ceil(512) * 512;
    file.seek(SeekFrom::Current(
        i64::try_from(padded).map_err(std::io::Error::other)?,
    ))?;
    file.write_all(&header_only("config.dump", 0))?;
    file.write_all(&[0u8; 1024])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_is_a_tar_with_containerds_layout() {
        let bytes = Fixture::sleepers().to_tar();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("checkpoint/"));
        assert!(names.contains(&"checkpoint/pages-3.img".to_owned()));
        assert!(names.contains(&"stats-dump".to_owned()));
        let pos = |n: &str| names.iter().position(|x| x == n);
        assert!(pos("checkpoint/mm-8.img") < pos("checkpoint/pagemap-8.img"));
        assert!(pos("checkpoint/pagemap-8.img") < pos("checkpoint/pages-2.img"));
    }

    #[test]
    fn varints_encode_like_protobuf() {
        let mut v = Vec::new();
        pb::varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        let mut f = Vec::new();
        pb::uint(&mut f, 1, 1);
        assert_eq!(f, [0x08, 0x01]);
    }
}
