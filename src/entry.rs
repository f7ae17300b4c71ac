//! The entry format: one compile's result (output files, stdout, stderr, exit status) as bytes that
//! can sit on a disk or travel to a remote store. Readers verify everything: a damaged or foreign
//! entry is an error, never a wrong object.
//!
//! Grammar (all integers little-endian):
//! ```text
//! entry    := magic:"CPOTENT" version:u8 codec:u8 body_len:u64 checksum:u128 payload
//! payload  := body, compressed by `codec` (0 = stored, 1 = zstd)
//! body     := exit_status:i32 section_count:u32 section*
//! section  := kind:u8 name_len:u16 name:utf8 data_len:u64 data
//! kind     := 1 (output file; name is its role: "object", "dep", "dwo", "gcno", …)
//!           | 2 (stdout) | 3 (stderr)
//! ```
//! `checksum` is xxh3-128 of the uncompressed body. Version history:
//! - 1: first version.
//!
//! The version is also fed into every cache key (see `key.rs`), so entries of another format are
//! never even looked up.

use std::fmt;

pub const MAGIC: &[u8; 7] = b"CPOTENT";
pub const FORMAT_VERSION: u8 = 1;
const CODEC_STORED: u8 = 0;
const CODEC_ZSTD: u8 = 1;
const HEADER_LEN: usize = 7 + 1 + 1 + 8 + 16;
/// zstd level: 1 is the fastest level that still compresses objects ~3x; both peers use a low level.
const ZSTD_LEVEL: i32 = 1;
/// Bodies up to this size are stored uncompressed (`encode_framed`).
const STORED_BELOW: usize = 8 << 10;

/// What a compile produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub exit_status: i32,
    /// Output files by role; the paths they go to come from the command line, never from here.
    pub files: Vec<(String, Vec<u8>)>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum EntryError {
    BadMagic,
    UnsupportedVersion(u8),
    UnsupportedCodec(u8),
    Truncated,
    ChecksumMismatch,
    Malformed(&'static str),
    Decompress(String),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::BadMagic => write!(f, "not a cachepot entry (bad magic)"),
            EntryError::UnsupportedVersion(v) => write!(f, "entry format version {v} is not supported"),
            EntryError::UnsupportedCodec(c) => write!(f, "entry compression codec {c} is not supported"),
            EntryError::Truncated => write!(f, "entry is truncated"),
            EntryError::ChecksumMismatch => write!(f, "entry checksum mismatch"),
            EntryError::Malformed(what) => write!(f, "entry is malformed: {what}"),
            EntryError::Decompress(e) => write!(f, "entry does not decompress: {e}"),
        }
    }
}

impl Entry {
    /// Serialize (and compress) this entry.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_for(true)
    }

    /// Serialize this entry for a store: `compress_large` false (a store that would keep a large
    /// body uncompressed anyway: the local disk alone, `Storage::wants_large_compressed`) leaves
    /// bodies of `LOCAL_STORED_FROM` and more uncompressed instead of compressing them for nothing.
    pub fn encode_for(&self, compress_large: bool) -> Vec<u8> {
        let mut body = Vec::with_capacity(
            16 + self.stdout.len() + self.stderr.len() + self.files.iter().map(|f| f.1.len() + 32).sum::<usize>(),
        );
        body.extend_from_slice(&self.exit_status.to_le_bytes());
        let count = self.files.len() + 2;
        body.extend_from_slice(&(count as u32).to_le_bytes());
        for (role, data) in &self.files {
            push_section(&mut body, 1, role, data);
        }
        push_section(&mut body, 2, "", &self.stdout);
        push_section(&mut body, 3, "", &self.stderr);
        frame_body(MAGIC, &body, compress_large || (body.len() as u64) < LOCAL_STORED_FROM)
    }

    /// Parse and verify an entry, all in memory (hits use `stream` instead).
    #[allow(dead_code)]
    /// Decode a whole entry into memory. The same decoder as `stream` (there is one parser of
    /// this format), with every file section collected.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        let files = std::cell::RefCell::new(Vec::<(String, Vec<u8>)>::new());
        let replay = stream(bytes, |role| {
            files.borrow_mut().push((role.to_string(), Vec::new()));
            Ok(Some(Collect(&files)))
        })
        .map_err(|e| match e {
            StreamError::Entry(e) => e,
            StreamError::Output(e) => EntryError::Malformed(if e.kind() == std::io::ErrorKind::OutOfMemory {
                "too large"
            } else {
                "unreadable"
            }),
        })?;
        Ok(Entry {
            exit_status: replay.exit_status,
            files: files.into_inner(),
            stdout: replay.stdout,
            stderr: replay.stderr,
        })
    }

    pub fn file(&self, role: &str) -> Option<&[u8]> {
        self.files.iter().find(|(r, _)| r == role).map(|(_, d)| d.as_slice())
    }
}

/// Appends a file section to the last file `Entry::decode` started.
struct Collect<'a>(&'a std::cell::RefCell<Vec<(String, Vec<u8>)>>);

impl std::io::Write for Collect<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some((_, v)) = self.0.borrow_mut().last_mut() {
            v.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why streaming an entry out failed: the entry is bad, or an output could not be written.
#[derive(Debug)]
pub enum StreamError {
    Entry(EntryError),
    Output(std::io::Error),
}

/// What a streamed entry held besides its files.
#[derive(Debug, Default)]
pub struct Replay {
    pub exit_status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Roles of the file sections that were written.
    pub roles: Vec<String>,
}

/// Decode an entry section by section, copying each file section into the writer `open` returns
/// for its role (`None` skips it) without holding the decompressed body in memory. The entry is
/// read from `source`: the bytes a store returned, or the local disk's file itself (buffered by
/// the caller), so a large entry is never read whole into memory. The checksum is verified as
/// the bytes go by; only an `Ok` result means the written files may be used.
/// Bounded: a body over `limits::ENTRY_BODY` or a stdout/stderr section over
/// `limits::CAPTURED_OUTPUT` is refused before anything is allocated for it.
pub fn stream<'a, W: std::io::Write>(
    mut source: impl std::io::BufRead + 'a,
    mut open: impl FnMut(&str) -> std::io::Result<Option<W>>,
) -> Result<Replay, StreamError> {
    use std::io::Read;
    let bad = StreamError::Entry;
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match source.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(bad(EntryError::Decompress(e.to_string()))),
        }
    }
    if got < HEADER_LEN {
        return Err(bad(EntryError::Truncated));
    }
    if &header[..7] != MAGIC {
        return Err(bad(EntryError::BadMagic));
    }
    if header[7] != FORMAT_VERSION {
        return Err(bad(EntryError::UnsupportedVersion(header[7])));
    }
    let body_len = u64::from_le_bytes(header[9..17].try_into().unwrap());
    let checksum = u128::from_le_bytes(header[17..33].try_into().unwrap());
    if body_len > crate::limits::ENTRY_BODY {
        return Err(bad(EntryError::Malformed("body length too large")));
    }
    let inner: Box<dyn Read + 'a> = match header[8] {
        CODEC_STORED => Box::new(source),
        CODEC_ZSTD => Box::new(
            zstd::stream::read::Decoder::with_buffer(source).map_err(|e| bad(EntryError::Decompress(e.to_string())))?,
        ),
        c => return Err(bad(EntryError::UnsupportedCodec(c))),
    };
    let mut r = HashingReader {
        inner,
        hasher: xxhash_rust::xxh3::Xxh3Default::new(),
        read: 0,
    };
    let mut replay = Replay::default();
    let small = |r: &mut HashingReader, n: usize| -> Result<Vec<u8>, StreamError> {
        let mut v = vec![0u8; n];
        r.read_exact(&mut v).map_err(|_| bad(EntryError::Truncated))?;
        Ok(v)
    };
    replay.exit_status = i32::from_le_bytes(small(&mut r, 4)?.try_into().unwrap());
    let count = u32::from_le_bytes(small(&mut r, 4)?.try_into().unwrap());
    for _ in 0..count {
        let kind = small(&mut r, 1)?[0];
        let name_len = u16::from_le_bytes(small(&mut r, 2)?.try_into().unwrap()) as usize;
        let name = String::from_utf8(small(&mut r, name_len)?)
            .map_err(|_| bad(EntryError::Malformed("section name is not UTF-8")))?;
        let len = u64::from_le_bytes(small(&mut r, 8)?.try_into().unwrap());
        if len > body_len {
            return Err(bad(EntryError::Truncated));
        }
        match kind {
            1 => {
                if !is_valid_role(&name) {
                    return Err(bad(EntryError::Malformed("bad output role")));
                }
                match open(&name).map_err(StreamError::Output)? {
                    Some(mut w) => {
                        copy_exact(&mut r, &mut w, len)?;
                        w.flush().map_err(StreamError::Output)?;
                    }
                    None => copy_exact(&mut r, &mut std::io::sink(), len)?,
                }
                replay.roles.push(name);
            }
            2 | 3 => {
                if len > crate::limits::CAPTURED_OUTPUT {
                    return Err(bad(EntryError::Malformed("compiler output section too large")));
                }
                let mut v = Vec::new();
                copy_exact(&mut r, &mut v, len)?;
                if kind == 2 {
                    replay.stdout = v
                } else {
                    replay.stderr = v
                }
            }
            _ => return Err(bad(EntryError::Malformed("unknown section kind"))),
        }
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra)
        .map_err(|e| bad(EntryError::Decompress(e.to_string())))?
        != 0
        || r.read != body_len
    {
        return Err(bad(EntryError::Malformed("length mismatch")));
    }
    if r.hasher.digest128() != checksum {
        return Err(bad(EntryError::ChecksumMismatch));
    }
    Ok(replay)
}

struct HashingReader<'a> {
    inner: Box<dyn std::io::Read + 'a>,
    hasher: xxhash_rust::xxh3::Xxh3Default,
    read: u64,
}

impl std::io::Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

fn copy_exact(r: &mut HashingReader, w: &mut impl std::io::Write, mut len: u64) -> Result<(), StreamError> {
    use std::io::Read;
    // 8 KiB on the stack for the usual object; a large section (an rlib, a linked binary) gets up to
    // 256 KiB from the heap (fresh zero pages, nothing to clear), so a 17 MB rlib is written in ~70
    // system calls instead of ~2,100, and its buffer costs 64 page faults, not 256.
    let mut small = [0u8; 8 * 1024];
    let mut large;
    let buf: &mut [u8] = if len > (64 << 10) {
        large = vec![0u8; (len as usize).min(256 << 10)];
        &mut large
    } else {
        &mut small
    };
    while len > 0 {
        let want = buf.len().min(len as usize);
        let n = r
            .read(&mut buf[..want])
            .map_err(|e| StreamError::Entry(EntryError::Decompress(e.to_string())))?;
        if n == 0 {
            return Err(StreamError::Entry(EntryError::Truncated));
        }
        w.write_all(&buf[..n]).map_err(StreamError::Output)?;
        len -= n as u64;
    }
    Ok(())
}

/// Roles are short identifiers; anything else in an entry means it was not written by us.
/// Roles never name paths (outputs come from the command line), but nothing that could read as
/// one (`..`, a leading dot) is accepted either: found by fuzzing (`o..ect` reached a writer).
fn is_valid_role(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 64
        && !role.starts_with('.')
        && !role.contains("..")
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn push_section(body: &mut Vec<u8>, kind: u8, name: &str, data: &[u8]) {
    body.push(kind);
    body.extend_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(&(data.len() as u64).to_le_bytes());
    body.extend_from_slice(data);
}

/// Frame `body` with `magic`, version, codec, length and checksum; compress with zstd. Shared by
/// entries and manifests so both get the same verification.
pub fn encode_framed(magic: &[u8; 7], body: &[u8]) -> Vec<u8> {
    frame_body(magic, body, true)
}

fn frame_body(magic: &[u8; 7], body: &[u8], compress: bool) -> Vec<u8> {
    let checksum = xxhash_rust::xxh3::xxh3_128(body);
    // A small body (a manifest, a small object) is stored as it is: decoding it with zstd costs a
    // hit ~10 % of its instructions (the decompression context), and it takes one disk block anyway.
    let compressed = (compress && body.len() > STORED_BELOW)
        .then(|| zstd::bulk::compress(body, ZSTD_LEVEL).ok())
        .flatten()
        .filter(|c| c.len() < body.len());
    match compressed {
        Some(c) => frame(magic, CODEC_ZSTD, body.len(), checksum, &c),
        None => frame(magic, CODEC_STORED, body.len(), checksum, body),
    }
}

fn frame(magic: &[u8], codec: u8, body_len: usize, checksum: u128, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(magic);
    out.push(FORMAT_VERSION);
    out.push(codec);
    out.extend_from_slice(&(body_len as u64).to_le_bytes());
    out.extend_from_slice(&checksum.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Compressed bodies at least this large are kept uncompressed on the local disk
/// (`uncompressed_form`): a hit of an rlib of several MB spent more time in zstd than in writing
/// the files (regex-automata: 9.5 MB decompressed at ~1.7 GB/s, a third of the hit's CPU).
pub const LOCAL_STORED_FROM: u64 = 1 << 20;

/// `framed` (what `encode_framed` gives, an entry or a manifest) with its body stored as it is,
/// when it is zstd-compressed and at least `LOCAL_STORED_FROM` long; `None` when it is to be kept
/// as it is (small, already stored, or not a valid frame: the reader will say what is wrong).
/// Both forms decode to the same verified body, so a reader takes either.
pub fn uncompressed_form(framed: &[u8]) -> Option<Vec<u8>> {
    if framed.len() < HEADER_LEN || framed[8] != CODEC_ZSTD {
        return None;
    }
    let body_len = u64::from_le_bytes(framed[9..17].try_into().unwrap());
    if body_len < LOCAL_STORED_FROM {
        return None;
    }
    let magic: &[u8; 7] = framed[..7].try_into().unwrap();
    let body = decode_framed_bounded(magic, framed, crate::limits::ENTRY_BODY).ok()?;
    let checksum = u128::from_le_bytes(framed[17..33].try_into().unwrap());
    Some(frame(magic, CODEC_STORED, body.len(), checksum, &body))
}

/// Undo `encode_framed`, verifying magic, version, length and checksum; bodies over
/// `limits::MANIFEST_BODY` are refused (the framing holds manifests; entries are streamed).
pub fn decode_framed(magic: &[u8; 7], bytes: &[u8]) -> Result<Vec<u8>, EntryError> {
    decode_framed_bounded(magic, bytes, crate::limits::MANIFEST_BODY)
}

/// `decode_framed` with a bound of `max_body` bytes. Decompression allocates as the output
/// grows and stops one byte past the declared length, so neither a lying length field nor a
/// zstd bomb costs more than the bound.
pub fn decode_framed_bounded(magic: &[u8; 7], bytes: &[u8], max_body: u64) -> Result<Vec<u8>, EntryError> {
    if bytes.len() < HEADER_LEN {
        return Err(if bytes.starts_with(&magic[..bytes.len().min(7)]) {
            EntryError::Truncated
        } else {
            EntryError::BadMagic
        });
    }
    if &bytes[..7] != magic {
        return Err(EntryError::BadMagic);
    }
    if bytes[7] != FORMAT_VERSION {
        return Err(EntryError::UnsupportedVersion(bytes[7]));
    }
    let codec = bytes[8];
    let body_len = u64::from_le_bytes(bytes[9..17].try_into().unwrap());
    let checksum = u128::from_le_bytes(bytes[17..33].try_into().unwrap());
    if body_len > max_body {
        return Err(EntryError::Malformed("body length too large"));
    }
    let payload = &bytes[HEADER_LEN..];
    let body = match codec {
        CODEC_STORED => payload.to_vec(),
        CODEC_ZSTD => {
            use std::io::Read;
            let decoder =
                zstd::stream::read::Decoder::with_buffer(payload).map_err(|e| EntryError::Decompress(e.to_string()))?;
            // zstd rarely compresses by more than ~50x on real data: a first guess, never the bound.
            let mut body = Vec::with_capacity((payload.len() as u64 * 8).min(body_len) as usize);
            decoder
                .take(body_len + 1)
                .read_to_end(&mut body)
                .map_err(|e| EntryError::Decompress(e.to_string()))?;
            body
        }
        c => return Err(EntryError::UnsupportedCodec(c)),
    };
    if body.len() as u64 != body_len {
        return Err(EntryError::Truncated);
    }
    if xxhash_rust::xxh3::xxh3_128(&body) != checksum {
        return Err(EntryError::ChecksumMismatch);
    }
    Ok(body)
}

/// A bounds-checked cursor over a verified body.
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        let end = self.pos.checked_add(n).ok_or(EntryError::Truncated)?;
        if end > self.buf.len() {
            return Err(EntryError::Truncated);
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            exit_status: 0,
            files: vec![
                ("object".into(), vec![0x7f, b'E', b'L', b'F', 1, 2, 3]),
                ("dep".into(), b"a.o: a.c\n".to_vec()),
            ],
            stdout: b"out".to_vec(),
            stderr: b"warning: x\n".repeat(100),
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn large_bodies_are_kept_uncompressed_in_the_local_form() {
        let mut large = sample();
        large.files[0].1 = b"rlib section ".repeat((LOCAL_STORED_FROM as usize) / 10);
        let compressed = large.encode();
        assert_eq!(compressed[8], CODEC_ZSTD);
        let kept = uncompressed_form(&compressed).expect("a large compressed body is re-framed");
        assert_eq!(kept[8], CODEC_STORED);
        assert_eq!(kept[..8], compressed[..8]);
        assert_eq!(
            kept[9..HEADER_LEN],
            compressed[9..HEADER_LEN],
            "same length and checksum"
        );
        assert_eq!(Entry::decode(&kept).unwrap(), large);
        // Encoded for a store that keeps it so: the same bytes, never compressed on the way.
        assert_eq!(large.encode_for(false), kept);
        assert_eq!(sample().encode_for(false), sample().encode());
        // Small, already stored or damaged: kept as they are.
        assert_eq!(uncompressed_form(&sample().encode()), None);
        assert_eq!(uncompressed_form(&kept), None);
        let mut damaged = compressed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(uncompressed_form(&damaged), None);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(Entry::decode(&bytes[..len]).is_err(), "truncated at {len} accepted");
        }
    }

    #[test]
    fn no_bit_flip_gives_a_different_entry() {
        // A flip may land in compressed-frame metadata that does not change the content; what must
        // never happen is a *different* entry being accepted.
        let e = sample();
        let bytes = e.encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            if let Ok(got) = Entry::decode(&b) {
                assert_eq!(got, e, "flip at {i} gave a different entry");
            }
        }
    }

    #[test]
    fn streaming_matches_decode_and_rejects_damage() {
        let e = sample();
        let bytes = e.encode();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let r = stream(&bytes[..], |role| {
            files.push((role.to_string(), Vec::new()));
            Ok(Some(std::io::Cursor::new(Vec::new())))
        })
        .unwrap();
        assert_eq!(
            (r.exit_status, &r.stdout, &r.stderr),
            (e.exit_status, &e.stdout, &e.stderr)
        );
        assert_eq!(r.roles, vec!["object".to_string(), "dep".to_string()]);
        for len in 0..bytes.len() {
            assert!(
                stream(&bytes[..len], |_| Ok(Some(std::io::sink()))).is_err(),
                "truncated at {len} accepted"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            if let Ok(r) = stream(&b[..], |_| Ok(Some(std::io::sink()))) {
                assert_eq!(
                    (r.stdout, r.stderr),
                    (e.stdout.clone(), e.stderr.clone()),
                    "flip at {i}"
                );
            }
        }
    }

    /// A frame whose payload decompresses to far more than its declared (small) length, or which
    /// declares a huge length: refused without allocating the claimed size.
    #[test]
    fn bombs_and_lying_lengths_are_refused() {
        let big = vec![0u8; 64 << 20];
        let bomb = zstd::bulk::compress(&big, 3).unwrap();
        let mut frame = encode_framed(MAGIC, b"small");
        frame.truncate(HEADER_LEN);
        frame[8] = CODEC_ZSTD;
        frame.extend_from_slice(&bomb);
        assert!(decode_framed(MAGIC, &frame).is_err());
        assert!(stream(&frame[..], |_| Ok(Some(std::io::sink()))).is_err());
        let mut lying = sample().encode();
        lying[9..17].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Entry::decode(&lying),
            Err(EntryError::Malformed("body length too large"))
        );
        assert!(stream(&lying[..], |_| Ok(Some(std::io::sink()))).is_err());
        // A section claiming 1 GiB of stdout is refused before anything is allocated.
        let mut body = Vec::new();
        body.extend_from_slice(&0i32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.push(2);
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(1u64 << 30).to_le_bytes());
        let mut huge = encode_framed(MAGIC, &body);
        huge[9..17].copy_from_slice(&(1u64 << 31).to_le_bytes());
        assert!(stream(&huge[..], |_| Ok(Some(std::io::sink()))).is_err());
    }

    #[test]
    fn foreign_roles_are_rejected() {
        let e = Entry {
            files: vec![("../../etc/passwd".into(), vec![1])],
            ..Default::default()
        };
        assert_eq!(
            Entry::decode(&e.encode()),
            Err(EntryError::Malformed("bad output role"))
        );
    }
}
