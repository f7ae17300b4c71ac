//! The local disk store. Layout: `<dir>/<k0>/<k1>/<key>`, where k0 and k1 are the key's first two
//! hex digits. Each of the 16 top-level buckets keeps its own size counter (`<dir>/<k0>/size`,
//! "files bytes") under a lock file, so the total size is known without scanning the cache, and
//! eviction (least recently used first, by mtime, which a hit refreshes) scans only the one bucket
//! that went over its share of the limit, as ccache does.
//!
//! Every entry is written to a temporary file beside its final name and renamed into place, so a
//! reader sees either the old entry, the new one, or none; readers verify entries anyway.

use super::{Storage, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const BUCKETS: u64 = 16;
/// Eviction cleans a bucket down to this fraction of its share, so it does not run on every put.
const EVICT_TO: f64 = 0.9;
/// Temporary files older than this were left by a killed process and are removed by eviction.
const STALE_TMP: Duration = Duration::from_secs(3600);

pub struct DiskStore {
    root: PathBuf,
    max_size: u64,
}

/// What one bucket holds, from its counter file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

impl DiskStore {
    pub fn new(root: &Path, max_size: u64) -> DiskStore {
        DiskStore {
            root: root.to_path_buf(),
            max_size,
        }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        if !valid_key(key) {
            return Err(StoreError::Write(format!("invalid cache key {key:?}")));
        }
        Ok(self.root.join(&key[0..1]).join(&key[1..2]).join(key))
    }

    /// Entries and bytes in the whole cache, from the bucket counters (no scan).
    pub fn usage(&self) -> Usage {
        let mut total = Usage::default();
        for b in 0..BUCKETS {
            let u = read_counter(&self.bucket_dir(b)).unwrap_or_default();
            total.files += u.files;
            total.bytes += u.bytes;
        }
        total
    }

    /// Remove every entry (statistics are kept).
    pub fn clear(&self) -> std::io::Result<()> {
        for b in 0..BUCKETS {
            let dir = self.bucket_dir(b);
            if !dir.exists() {
                continue;
            }
            let lock = BucketLock::acquire(&dir)?;
            for sub in fs::read_dir(&dir)? {
                let sub = sub?;
                if sub.file_type()?.is_dir() {
                    fs::remove_dir_all(sub.path())?;
                }
            }
            lock.write(Usage::default())?;
        }
        Ok(())
    }

    /// `--cleanup` and `--evict-older-than`: in every bucket, remove the entries not used within
    /// `max_age` (when given), then trim the bucket under its share of the limit as a put would;
    /// counters are rewritten from the scan. Returns what the cache held before and after.
    pub fn cleanup(&self, max_age: Option<Duration>) -> std::io::Result<(Usage, Usage)> {
        let before = self.usage();
        let cutoff = max_age.and_then(|age| SystemTime::now().checked_sub(age));
        for b in 0..BUCKETS {
            let dir = self.bucket_dir(b);
            if !dir.exists() {
                continue;
            }
            let lock = BucketLock::acquire(&dir)?;
            if let Some(cutoff) = cutoff {
                for sub in fs::read_dir(&dir)? {
                    let sub = sub?;
                    if !sub.file_type()?.is_dir() {
                        continue;
                    }
                    for f in fs::read_dir(sub.path())?.flatten() {
                        let old = f.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < cutoff);
                        if old && !f.file_name().to_string_lossy().starts_with(".tmp") {
                            let _ = fs::remove_file(f.path());
                        }
                    }
                }
            }
            self.evict(&dir, &lock)?;
        }
        Ok((before, self.usage()))
    }

    fn bucket_dir(&self, bucket: u64) -> PathBuf {
        self.root.join(format!("{bucket:x}"))
    }

    fn bucket_limit(&self) -> u64 {
        self.max_size / BUCKETS
    }

    /// Scan one bucket: remove stale temporary files, then the least recently used entries until the
    /// bucket is under `EVICT_TO` of its share; rewrite its counter from what the scan saw.
    fn evict(&self, dir: &Path, lock: &BucketLock) -> std::io::Result<()> {
        let mut files = Vec::new();
        let now = SystemTime::now();
        for sub in fs::read_dir(dir)? {
            let sub = sub?;
            if !sub.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(sub.path())? {
                let f = f?;
                let Ok(meta) = f.metadata() else { continue };
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                if f.file_name().to_string_lossy().starts_with(".tmp") {
                    if now.duration_since(mtime).unwrap_or_default() > STALE_TMP {
                        let _ = fs::remove_file(f.path());
                    }
                    continue;
                }
                files.push((mtime, disk_size(meta.len()), f.path()));
            }
        }
        files.sort();
        let mut usage = Usage {
            files: files.len() as u64,
            bytes: files.iter().map(|f| f.1).sum(),
        };
        let target = (self.bucket_limit() as f64 * EVICT_TO) as u64;
        for (_, size, path) in &files {
            if usage.bytes <= target {
                break;
            }
            if fs::remove_file(path).is_ok() {
                usage.files -= 1;
                usage.bytes -= size;
                log::debug!(target: "disk", "evicted {}", path.display());
            }
        }
        lock.write(usage)
    }
}

impl Storage for DiskStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Read(format!("{}: {e}", path.display()))),
        };
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| StoreError::Read(format!("{}: {e}", path.display())))?;
        // Refresh the mtime: eviction removes the least recently *used* entries first.
        let _ = f.set_modified(SystemTime::now());
        Ok(Some(buf))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let werr = |what: &Path, e: std::io::Error| StoreError::Write(format!("{}: {e}", what.display()));
        let parent = path.parent().expect("entry path has a parent");
        fs::create_dir_all(parent).map_err(|e| werr(parent, e))?;
        let tmp = parent.join(format!(".tmp.{key}.{}.{}", std::process::id(), nanos()));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(werr(&tmp, e));
        }
        let bucket = self.root.join(&key[0..1]);
        let lock = BucketLock::acquire(&bucket).map_err(|e| werr(&bucket, e))?;
        let old = fs::metadata(&path).ok().map(|m| disk_size(m.len()));
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(werr(&path, e));
        }
        let mut usage = match read_counter(&bucket) {
            Some(u) => u,
            None => {
                // A missing or damaged counter: recount this bucket by scanning it.
                return self.evict(&bucket, &lock).map_err(|e| werr(&bucket, e));
            }
        };
        usage.bytes = usage.bytes.saturating_sub(old.unwrap_or(0)) + disk_size(bytes.len() as u64);
        usage.files += u64::from(old.is_none());
        if usage.bytes > self.bucket_limit() {
            self.evict(&bucket, &lock).map_err(|e| werr(&bucket, e))?;
        } else {
            lock.write(usage).map_err(|e| werr(&bucket, e))?;
        }
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let bucket = self.root.join(&key[0..1]);
        let lock = BucketLock::acquire(&bucket).map_err(|e| StoreError::Write(format!("{}: {e}", bucket.display())))?;
        if let Ok(meta) = fs::metadata(&path)
            && fs::remove_file(&path).is_ok()
            && let Some(mut u) = read_counter(&bucket)
        {
            u.files = u.files.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(disk_size(meta.len()));
            let _ = lock.write(u);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("local disk {}", self.root.display())
    }
}

/// Keys are file names: at least two leading hex digits (the fan-out), then [0-9a-z.-].
fn valid_key(key: &str) -> bool {
    key.len() >= 3
        && key.as_bytes()[..2]
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'.' || b == b'-')
}

/// Bytes a file of `len` bytes occupies, counted in 4 KiB blocks as a file system does.
fn disk_size(len: u64) -> u64 {
    len.div_ceil(4096) * 4096
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn read_counter(bucket: &Path) -> Option<Usage> {
    let text = fs::read_to_string(bucket.join("size")).ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>());
    match (it.next(), it.next()) {
        (Some(Ok(files)), Some(Ok(bytes))) => Some(Usage { files, bytes }),
        _ => None,
    }
}

/// An exclusive lock on one bucket's counter; dropped (or the process dying) releases it.
struct BucketLock {
    file: File,
}

impl BucketLock {
    fn acquire(bucket: &Path) -> std::io::Result<BucketLock> {
        fs::create_dir_all(bucket)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(bucket.join("size"))?;
        file.lock()?;
        Ok(BucketLock { file })
    }

    /// Rewrite the counter in place; safe because every writer holds the lock.
    fn write(&self, u: Usage) -> std::io::Result<()> {
        let mut f = &self.file;
        let text = format!("{} {}\n", u.files, u.bytes);
        f.seek(SeekFrom::Start(0))?;
        f.write_all(text.as_bytes())?;
        self.file.set_len(text.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cachepot-disk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn key(i: u32) -> String {
        crate::key::sha256_hex(&i.to_le_bytes())
    }

    #[test]
    fn put_get_remove() {
        let d = tmpdir("pgr");
        let s = DiskStore::new(&d, 1 << 30);
        assert_eq!(s.get(&key(1)).unwrap(), None);
        s.put(&key(1), b"hello").unwrap();
        assert_eq!(s.get(&key(1)).unwrap().as_deref(), Some(&b"hello"[..]));
        s.put(&key(1), b"again").unwrap();
        assert_eq!(s.usage(), Usage { files: 1, bytes: 4096 });
        s.remove(&key(1)).unwrap();
        assert_eq!(s.get(&key(1)).unwrap(), None);
        assert_eq!(s.usage(), Usage::default());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn eviction_keeps_size_under_limit_and_keeps_recent() {
        let d = tmpdir("evict");
        // 16 buckets x 8 KiB: each bucket holds at most two 4 KiB entries.
        let s = DiskStore::new(&d, 16 * 8192);
        for i in 0..200 {
            s.put(&key(i), &[0u8; 100]).unwrap();
        }
        assert!(s.usage().bytes <= 16 * 8192, "{:?}", s.usage());
        let last = key(199);
        assert!(s.get(&last).unwrap().is_some(), "most recent entry was evicted");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rejects_keys_that_are_not_file_names() {
        let s = DiskStore::new(Path::new("/nonexistent"), 1);
        assert!(s.put("../etc", b"x").is_err());
        assert!(s.put("ab/cd", b"x").is_err());
    }
}
