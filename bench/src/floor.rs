//! The least CPU any implementation of the download path must spend per byte
//! on this machine, measured: the cryptography that the path's shape makes
//! unavoidable, and nothing else.
//!
//! A download crosses three TLS connections (the plugin to kube-apiserver,
//! kube-apiserver's aggregator to checkpoint-apiserver, checkpoint-apiserver
//! to the node agent); each one encrypts every byte once and decrypts it
//! once: six AEAD passes. The plugin checks the archive's sha256: one pass.
//! The floor times those passes over an in-memory buffer with the cheapest
//! suite TLS 1.3 offers here (AES-128-GCM, ring's, as rustls uses it, in
//! 16 KiB records) and SHA-256 (the `sha2` crate the plugin uses), and
//! spreads them perfectly over every core.
//!
//! What it leaves out makes the real floor higher, never lower: reading the
//! node's file, the kernel's copies on every TCP hop, writing the download,
//! HTTP framing, the processes competing for the same cores. So when
//! `cp` / floor is below a throughput target, no implementation of this
//! path reaches the target on this machine.

use std::time::{Duration, Instant};

use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

/// TLS connections a download crosses.
pub const TLS_HOPS: u32 = 3;
/// AEAD passes over every byte: each hop seals it once and opens it once.
pub const AEAD_PASSES: u32 = 2 * TLS_HOPS;
/// The largest TLS record's plaintext.
const RECORD: usize = 16 * 1024;
/// The buffer the passes run over, again and again up to the archive's size.
const BUFFER: usize = 64 * 1024 * 1024;

/// One measurement of the floor for `bytes` bytes.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// One AES-128-GCM pass (seal; opening costs the same) over the bytes.
    pub aead_pass: Duration,
    /// One SHA-256 pass over the bytes.
    pub sha256_pass: Duration,
    /// Cores the passes are spread over.
    pub cores: u32,
}

impl Floor {
    /// CPU time: six AEAD passes and one digest.
    pub fn cpu(&self) -> Duration {
        self.aead_pass * AEAD_PASSES + self.sha256_pass
    }

    /// Wall time with the CPU time spread perfectly over every core.
    pub fn wall(&self) -> Duration {
        self.cpu() / self.cores.max(1)
    }
}

/// The fastest of `rounds` measurements for `bytes` bytes: the lowest floor.
pub fn measure(bytes: u64, rounds: u32) -> Floor {
    let cores = std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(1);
    let mut buf = vec![0x5au8; BUFFER];
    let mut best = Floor {
        aead_pass: Duration::MAX,
        sha256_pass: Duration::MAX,
        cores,
    };
    for _ in 0..rounds.max(1) {
        best.aead_pass = best.aead_pass.min(aead_pass(&mut buf, bytes));
        best.sha256_pass = best.sha256_pass.min(sha256_pass(&buf, bytes));
    }
    best
}

/// Chunks of `buf` that add up to `bytes`.
fn chunks(buf_len: usize, bytes: u64) -> impl Iterator<Item = usize> {
    let full = bytes / buf_len as u64;
    let rest = usize::try_from(bytes % buf_len as u64).unwrap_or(0);
    (0..full)
        .map(move |_| buf_len)
        .chain((rest > 0).then_some(rest))
}

fn aead_pass(buf: &mut [u8], bytes: u64) -> Duration {
    // The key and nonces do not change the cost; a fresh nonce per record
    // keeps it the operation TLS performs.
    let Ok(unbound) = UnboundKey::new(&AES_128_GCM, &[7u8; 16]) else {
        return Duration::MAX;
    };
    let key = LessSafeKey::new(unbound);
    let mut seq = 0u64;
    let started = Instant::now();
    for len in chunks(buf.len(), bytes) {
        for record in buf[..len].chunks_mut(RECORD) {
            seq += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&seq.to_be_bytes());
            if key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    record,
                )
                .is_err()
            {
                return Duration::MAX;
            }
        }
    }
    started.elapsed()
}

fn sha256_pass(buf: &[u8], bytes: u64) -> Duration {
    let started = Instant::now();
    let mut hasher = Sha256::new();
    for len in chunks(buf.len(), bytes) {
        hasher.update(&buf[..len]);
    }
    std::hint::black_box(hasher.finalize());
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_add_up() {
        assert_eq!(chunks(4, 10).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(chunks(4, 8).collect::<Vec<_>>(), [4, 4]);
        assert_eq!(chunks(4, 0).count(), 0);
    }

    #[test]
    fn wall_is_cpu_over_cores() {
        let f = Floor {
            aead_pass: Duration::from_millis(100),
            sha256_pass: Duration::from_millis(400),
            cores: 2,
        };
        assert_eq!(f.cpu(), Duration::from_millis(1000));
        assert_eq!(f.wall(), Duration::from_millis(500));
    }

    #[test]
    fn a_small_measurement_takes_time() {
        let f = measure(1 << 20, 1);
        assert!(f.aead_pass > Duration::ZERO && f.aead_pass < Duration::MAX);
        assert!(f.sha256_pass > Duration::ZERO && f.sha256_pass < Duration::MAX);
    }
}
