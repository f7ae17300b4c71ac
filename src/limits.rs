//! The bound on every read of bytes cachepot did not just write (response files, sources and
//! headers, dependency files, entries, manifests, the config file), in one place. Past a bound the
//! caller passes the call through (or treats the entry as damaged): a hostile or broken input
//! (`@/dev/zero`, a zstd bomb, a length field of 2^64) costs at most the bound, never the machine.
//! The coordinator's messages have their own, smaller bound (`coordinator::protocol::MAX_FRAME`).

use std::io::Read;
use std::path::Path;

/// One response file (`@file`); gcc command lines of a few hundred KiB are common, 4 MiB is not.
pub const RESPONSE_FILE: u64 = 4 << 20;
/// All response files of one call together (nesting multiplies one file's size).
pub const RESPONSE_FILES_TOTAL: u64 = 16 << 20;
/// A source or header file that is hashed for a key.
pub const INPUT_FILE: u64 = 512 << 20;
/// A Make-style dependency file (thousands of headers are a few hundred KiB).
pub const DEP_FILE: u64 = 64 << 20;
/// The TOML config file.
pub const CONFIG_FILE: u64 = 1 << 20;
/// A manifest's decompressed body (12 include sets of thousands of headers are a few MiB).
pub const MANIFEST_BODY: u64 = 64 << 20;
/// An entry's decompressed body (its output files, streamed to disk, not held in memory).
pub const ENTRY_BODY: u64 = 4 << 30;
/// An entry as stored (compressed), which is read whole into memory.
pub const ENTRY_FILE: u64 = 2 << 30;
/// The compiler's stdout or stderr kept in an entry (held in memory on a hit).
pub const CAPTURED_OUTPUT: u64 = 64 << 20;

/// Read a whole file of at most `max` bytes. Anything else — a file over the bound, a directory,
/// a FIFO or device (reading one could consume what the compiler needs, or never end) — is an
/// error that names the path.
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    read_bounded(f, max, meta.len(), path)
}

/// Read at most `max` bytes from `r`; more is an error (`hint`: the expected size, for the buffer).
fn read_bounded(r: impl Read, max: u64, hint: u64, path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(hint.min(max) as usize);
    r.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(over(path, max));
    }
    Ok(buf)
}

/// Read any file (a response file may be `/dev/stdin` or a FIFO) up to `max` bytes.
pub fn read_any(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let hint = f.metadata().map(|m| m.len()).unwrap_or(0);
    read_bounded(f, max, hint, path)
}

/// `read_any` for text: small files cachepot or the user keeps (credentials, tokens, its own
/// memo files); not UTF-8 is an `InvalidData` error, as `fs::read_to_string` gives.
pub fn read_text(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_any(path, max)?).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text", path.display()),
        )
    })
}

fn over(path: &Path, max: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!(
            "{} is larger than cachepot's limit of {max} bytes for it",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold() {
        assert!(read_any(Path::new("/dev/zero"), 1 << 10).is_err());
        assert!(read_regular(Path::new("/dev/zero"), 1 << 10).is_err());
        assert!(read_regular(Path::new("/"), 1 << 10).is_err());
        let f = std::env::temp_dir().join(format!("cachepot-limits-{}", std::process::id()));
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_regular(&f, 5).unwrap(), b"12345");
        assert!(read_regular(&f, 4).is_err());
        std::fs::remove_file(&f).unwrap();
    }
}
