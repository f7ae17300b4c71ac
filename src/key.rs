//! Cache keys: SHA-256 over labelled inputs. Every input is fed with a label ("arg", "env CPATH",
//! "source", …) so that the same sequence can be written out as text, which answers "why did this
//! miss?" (`CACHEPOT_DEBUG=1`). Bump `CACHE_VERSION` whenever the set or meaning of key inputs changes.

use sha2::{Digest, Sha256};

/// Version of what goes into keys. Bumping it makes every old entry unreachable.
pub const CACHE_VERSION: u32 = 1;

/// A key under construction.
pub struct KeyBuilder {
    hasher: Sha256,
    /// The labelled inputs in text form, kept only when a debug dump was asked for.
    dump: Option<String>,
}

impl KeyBuilder {
    /// A builder for keys of one kind (`"result"`, `"manifest"`, …); kinds never collide.
    pub fn new(kind: &str, keep_dump: bool) -> KeyBuilder {
        let mut k = KeyBuilder {
            hasher: Sha256::new(),
            dump: keep_dump.then(String::new),
        };
        k.add_str("cachepot key version", &CACHE_VERSION.to_string());
        k.add_str("entry format", &crate::entry::FORMAT_VERSION.to_string());
        k.add_str("key kind", kind);
        k
    }

    /// Feed one labelled input. Label and value are length-prefixed, so no two different sequences
    /// of inputs produce the same byte stream.
    pub fn add(&mut self, label: &str, value: &[u8]) {
        self.hasher.update((label.len() as u64).to_le_bytes());
        self.hasher.update(label.as_bytes());
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        if let Some(dump) = &mut self.dump {
            dump.push_str(label);
            dump.push_str(": ");
            if value.len() > 256 || std::str::from_utf8(value).is_err() {
                dump.push_str(&format!(
                    "<{} bytes, sha256 {}>",
                    value.len(),
                    hex(&Sha256::digest(value))
                ));
            } else {
                dump.push_str(&String::from_utf8_lossy(value).replace('\n', "\\n"));
            }
            dump.push('\n');
        }
    }

    pub fn add_str(&mut self, label: &str, value: &str) {
        self.add(label, value.as_bytes());
    }

    pub fn add_os(&mut self, label: &str, value: &std::ffi::OsStr) {
        use std::os::unix::ffi::OsStrExt;
        self.add(label, value.as_bytes());
    }

    /// Feed an input already reduced to a digest (e.g. a file's content hash).
    pub fn add_digest(&mut self, label: &str, digest_hex: &str) {
        self.add(label, digest_hex.as_bytes());
    }

    /// The finished key (64 lowercase hex characters) and the text dump, if kept.
    pub fn finish(self) -> (String, Option<String>) {
        (hex(&self.hasher.finalize()), self.dump)
    }
}

/// SHA-256 of a byte string, as hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The bytes `hex` wrote; `None` for anything else (odd length, a non-hex digit).
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_separate_inputs() {
        let mut a = KeyBuilder::new("result", false);
        a.add_str("arg", "-DA");
        a.add_str("arg", "B");
        let mut b = KeyBuilder::new("result", false);
        b.add_str("arg", "-DAB");
        assert_ne!(a.finish().0, b.finish().0);
    }

    #[test]
    fn kinds_separate_keys() {
        assert_ne!(
            KeyBuilder::new("result", false).finish().0,
            KeyBuilder::new("manifest", false).finish().0
        );
    }

    #[test]
    fn dump_lists_inputs() {
        let mut a = KeyBuilder::new("result", true);
        a.add_str("env CPATH", "/x");
        let (key, dump) = a.finish();
        assert_eq!(key.len(), 64);
        assert!(dump.unwrap().contains("env CPATH: /x\n"));
    }
}
