//! CRIU's image format, read the way go-criu's `crit` decodes it
//! (`crit/decode.go`, `ReadMagic`): a 4-byte little-endian magic (for most
//! images `IMG_COMMON_MAGIC` or `IMG_SERVICE_MAGIC` first, then the image's
//! own), then messages, each a 4-byte little-endian length and that many
//! bytes of protobuf, until the end of the file.
//!
//! Unlike go-criu, nothing here trusts a length: a message longer than the
//! limit is refused before anything is allocated, and a short read is an
//! error, not a shorter message.

use std::io::{self, Read};

use crate::images::{IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC};

/// What is wrong with one CRIU image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("it ends inside {what}")]
    Truncated { what: &'static str },
    #[error("its magic is {found:#010x}, expected {expected:#010x} ({name})")]
    WrongMagic {
        name: &'static str,
        expected: u32,
        found: u32,
    },
    #[error("it holds a {size}-byte message, more than the {limit} bytes accepted")]
    MessageTooLarge { size: u64, limit: u64 },
    #[error("it holds something that is not a {message} message")]
    Decode {
        message: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    #[error("it holds no {message} message")]
    Empty { message: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("failed to read it")]
    Read(#[source] io::Error),
}

/// Reads the header and the messages of one image from `inner`.
#[derive(Debug)]
pub struct ImageReader<R> {
    inner: R,
    max_message: u64,
    buf: Vec<u8>,
}

impl<R: Read> ImageReader<R> {
    /// `max_message`: the largest message accepted, in bytes.
    pub fn new(inner: R, max_message: u64) -> Self {
        Self {
            inner,
            max_message,
            buf: Vec::new(),
        }
    }

    /// Read the magic: `IMG_COMMON_MAGIC` or `IMG_SERVICE_MAGIC` and then
    /// `expected`, or `expected` alone (images without the common magic).
    pub fn read_magic(&mut self, name: &'static str, expected: u32) -> Result<(), ImageError> {
        let first = self
            .read_u32("the magic")?
            .ok_or(ImageError::Truncated { what: "the magic" })?;
        let magic = if first == IMG_COMMON_MAGIC || first == IMG_SERVICE_MAGIC {
            self.read_u32("the magic")?
                .ok_or(ImageError::Truncated { what: "the magic" })?
        } else {
            first
        };
        if magic != expected {
            return Err(ImageError::WrongMagic {
                name,
                expected,
                found: magic,
            });
        }
        Ok(())
    }

    /// The next message, or `None` at the end of the image.
    pub fn next<M: prost::Message + Default>(
        &mut self,
        message: &'static str,
    ) -> Result<Option<M>, ImageError> {
        let Some(size) = self.read_u32("a message length")? else {
            return Ok(None);
        };
        let size = u64::from(size);
        if size > self.max_message {
            return Err(ImageError::MessageTooLarge {
                size,
                limit: self.max_message,
            });
        }
        self.buf.clear();
        let read = (&mut self.inner)
            .take(size)
            .read_to_end(&mut self.buf)
            .map_err(ImageError::Read)?;
        if (read as u64) < size {
            return Err(ImageError::Truncated { what: "a message" });
        }
        M::decode(self.buf.as_slice())
            .map(Some)
            .map_err(|source| ImageError::Decode { message, source })
    }

    /// The first message, which must exist.
    pub fn first<M: prost::Message + Default>(
        &mut self,
        message: &'static str,
    ) -> Result<M, ImageError> {
        self.next(message)?.ok_or(ImageError::Empty { message })
    }

    /// A little-endian u32; `None` at a clean end of input.
    fn read_u32(&mut self, what: &'static str) -> Result<Option<u32>, ImageError> {
        let mut word = [0u8; 4];
        let mut got = 0;
        while got < word.len() {
            match self.inner.read(&mut word[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ImageError::Read(e)),
            }
        }
        match got {
            0 => Ok(None),
            4 => Ok(Some(u32::from_le_bytes(word))),
            _ => Err(ImageError::Truncated { what }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use prost::Message;

    use super::*;
    use crate::images::{PSTREE_MAGIC, PstreeEntry};

    /// An image: the common magic, `magic`, then each message length-prefixed.
    pub(crate) fn image(magic: u32, messages: &[Vec<u8>]) -> Vec<u8> {
        let mut out = IMG_COMMON_MAGIC.to_le_bytes().to_vec();
        out.extend(magic.to_le_bytes());
        for m in messages {
            out.extend(u32::try_from(m.len()).unwrap().to_le_bytes());
            out.extend(m);
        }
        out
    }

    fn entry(pid: u32, ppid: u32) -> Vec<u8> {
        PstreeEntry {
            pid,
            ppid,
            pgid: pid,
            sid: 1,
        }
        .encode_to_vec()
    }

    #[test]
    fn reads_header_and_messages() {
        let bytes = image(PSTREE_MAGIC, &[entry(1, 0), entry(8, 1)]);
        let mut r = ImageReader::new(bytes.as_slice(), 1024);
        r.read_magic("PSTREE", PSTREE_MAGIC).unwrap();
        let a: PstreeEntry = r.first("pstree_entry").unwrap();
        let b: PstreeEntry = r.next("pstree_entry").unwrap().unwrap();
        assert_eq!((a.pid, b.pid, b.ppid), (1, 8, 1));
        assert!(r.next::<PstreeEntry>("pstree_entry").unwrap().is_none());
    }

    #[test]
    fn refuses_what_is_wrong() {
        let err = |bytes: &[u8]| {
            let mut r = ImageReader::new(bytes, 64);
            let e = r
                .read_magic("PSTREE", PSTREE_MAGIC)
                .and_then(|()| r.first::<PstreeEntry>("pstree_entry").map(drop));
            e.unwrap_err().to_string()
        };
        assert_eq!(err(b""), "it ends inside the magic");
        assert_eq!(err(&[0x19, 0x43]), "it ends inside the magic");
        assert_eq!(
            err(&image(0x1234_5678, &[])),
            "its magic is 0x12345678, expected 0x50273030 (PSTREE)"
        );
        assert_eq!(
            err(&image(PSTREE_MAGIC, &[])),
            "it holds no pstree_entry message"
        );
        let mut huge = image(PSTREE_MAGIC, &[]);
        huge.extend(u32::MAX.to_le_bytes());
        assert_eq!(
            err(&huge),
            "it holds a 4294967295-byte message, more than the 64 bytes accepted"
        );
        let mut short = image(PSTREE_MAGIC, &[]);
        short.extend(10u32.to_le_bytes());
        short.extend([0x08, 0x01]);
        assert_eq!(err(&short), "it ends inside a message");
        let mut half = image(PSTREE_MAGIC, &[]);
        half.extend([1, 0]);
        assert_eq!(err(&half), "it ends inside a message length");
        assert_eq!(
            err(&image(PSTREE_MAGIC, &[vec![0xff, 0xff, 0xff]])),
            "it holds something that is not a pstree_entry message"
        );
    }

    #[test]
    fn images_without_the_common_magic_are_read() {
        let mut bytes = PSTREE_MAGIC.to_le_bytes().to_vec();
        let e = entry(1, 0);
        bytes.extend(u32::try_from(e.len()).unwrap().to_le_bytes());
        bytes.extend(e);
        let mut r = ImageReader::new(bytes.as_slice(), 64);
        r.read_magic("PSTREE", PSTREE_MAGIC).unwrap();
        assert_eq!(r.first::<PstreeEntry>("pstree_entry").unwrap().pid, 1);
    }
}
