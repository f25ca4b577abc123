//! A small tmpfs mounted for a test (a disk that fills up), and filling it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the tests run as root (mounts, other users, dropped capabilities).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A tmpfs mounted at a directory for the test, unmounted (lazily) on drop.
#[derive(Debug)]
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `size` (`256k`) at `dir` (created), mode 0755.
    /// Panics with what is missing when it cannot (root, mount(8)).
    pub fn mount(dir: &Path, size: &str) -> Self {
        assert!(
            is_root(),
            "this test needs root to mount a tmpfs (run the tests as root, as CI does)"
        );
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("this test needs mount(8) (util-linux)");
        assert!(
            out.status.success(),
            "mount -t tmpfs {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_owned())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the file system holding `path` up to the last byte, with the file `path`.
pub fn fill(path: &Path) {
    let mut f = std::fs::File::create(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    let chunk = vec![0x5a_u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Byte by byte for the last partial block.
    while let Ok(1) = f.write(&[0x5a]) {}
    let _ = f.sync_all();
}
