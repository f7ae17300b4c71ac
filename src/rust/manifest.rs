//! Rust manifests and the local file-hash cache: what lets a hit start no rustc process.
//!
//! A manifest is stored under the crate compile's manifest key (toolchain, arguments, externs,
//! environment: everything known before compiling). It lists what the last dep-info passes found
//! — each source file with its content digest, each environment variable the crate read with the
//! SHA-256 of its value (never the value) — and the result key those inputs gave. A call whose files and variables all match a
//! candidate uses that candidate's result key. Manifest body grammar (inside `entry::encode_framed`
//! with magic `CPOTRMF`; one item a line, newest candidate first, at most `MAX_CANDIDATES`):
//! ```text
//! candidate <result key>
//! src <xxh3-128 hex> <path, hex of its bytes>
//! env <name> <hex of the value's sha256 hex digest> | env <name> -
//! lnk <xxh3-128 hex> <path, hex of its bytes; may start with rust/link.rs's profile mark>
//! end
//! ```
//! Version history: 1: first version (the framing's version byte). Since rust key version 2 the
//! env field holds the value's digest, not the value. `lnk` lines (what a link read, rust/link.rs)
//! came with linked crate types; a reader that predates them refuses the manifest as malformed,
//! so it is compiled anew, never misread.
//!
//! The hash cache keeps, for one compile's files, (device, inode, size, mtime, ctime) → digest in a
//! local file, so unchanged files are not read again. It is local only: stat data means nothing on
//! another machine. A file changed within the last `RACY_SECS` is never recorded (its mtime may not
//! move on the next change).

use crate::entry::{EntryError, decode_framed, encode_framed};
use crate::key::{hex, unhex};
use std::collections::HashMap;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 7] = b"CPOTRMF";
const MAX_CANDIDATES: usize = 8;
const RACY_SECS: i64 = 2;

/// One earlier compile's inputs and the result key they gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Candidate {
    pub result_key: String,
    pub sources: Vec<(PathBuf, String)>,
    pub env: Vec<(String, Option<String>)>,
    /// Files the linker read (linked crate types only).
    pub link: Vec<(PathBuf, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub candidates: Vec<Candidate>,
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut t = String::new();
        for c in &self.candidates {
            t.push_str(&format!("candidate {}\n", c.result_key));
            for (p, d) in &c.sources {
                t.push_str(&format!("src {d} {}\n", hex(p.as_os_str().as_bytes())));
            }
            for (p, d) in &c.link {
                t.push_str(&format!("lnk {d} {}\n", hex(p.as_os_str().as_bytes())));
            }
            for (n, v) in &c.env {
                match v {
                    Some(v) => t.push_str(&format!("env {n} {}\n", hex(v.as_bytes()))),
                    None => t.push_str(&format!("env {n} -\n")),
                }
            }
            t.push_str("end\n");
        }
        encode_framed(MAGIC, t.as_bytes())
    }

    pub fn decode(bytes: &[u8]) -> Result<Manifest, EntryError> {
        let bad = EntryError::Malformed("bad rust manifest");
        let body = decode_framed(MAGIC, bytes)?;
        let text = std::str::from_utf8(&body).map_err(|_| EntryError::Malformed("manifest is not UTF-8"))?;
        let mut m = Manifest::default();
        let mut cur: Option<Candidate> = None;
        for line in text.lines() {
            let mut f = line.split(' ');
            match (f.next(), f.next(), f.next(), cur.as_mut()) {
                (Some("candidate"), Some(k), None, None) => {
                    // The result key names a store entry: only what `KeyBuilder` makes is accepted.
                    if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                        return Err(EntryError::Malformed("result key"));
                    }
                    cur = Some(Candidate {
                        result_key: k.to_string(),
                        ..Default::default()
                    })
                }
                (Some("src"), Some(d), Some(p), Some(c)) => {
                    let p = unhex(p).ok_or(EntryError::Malformed("bad rust manifest"))?;
                    c.sources
                        .push((PathBuf::from(std::ffi::OsString::from_vec(p)), d.to_string()));
                }
                (Some("lnk"), Some(d), Some(p), Some(c)) => {
                    let p = unhex(p).ok_or(EntryError::Malformed("bad rust manifest"))?;
                    c.link
                        .push((PathBuf::from(std::ffi::OsString::from_vec(p)), d.to_string()));
                }
                (Some("env"), Some(n), Some(v), Some(c)) => {
                    let v = match v {
                        "-" => None,
                        _ => Some(
                            String::from_utf8(unhex(v).ok_or(EntryError::Malformed("bad rust manifest"))?)
                                .map_err(|_| EntryError::Malformed("bad rust manifest"))?,
                        ),
                    };
                    c.env.push((n.to_string(), v));
                }
                (Some("end"), None, None, Some(_)) => m.candidates.push(cur.take().unwrap()),
                _ => return Err(bad),
            }
        }
        if cur.is_some() {
            return Err(bad);
        }
        Ok(m)
    }

    /// Put `c` first, dropping an older candidate with the same inputs and the oldest beyond the cap.
    pub fn add(&mut self, c: Candidate) {
        self.candidates
            .retain(|o| o.result_key != c.result_key && (o.sources != c.sources || o.env != c.env || o.link != c.link));
        self.candidates.insert(0, c);
        self.candidates.truncate(MAX_CANDIDATES);
    }
}

type Stat = (u64, u64, u64, i64, i64, i64, i64);

/// Hex digits of a file digest (XXH3-128).
const FILE_DIGEST_HEX: usize = 32;

fn stat_of(m: &std::fs::Metadata) -> Stat {
    (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// Content digests of files, remembered by stat data in one local file per compile command.
pub struct HashCache {
    file: Option<PathBuf>,
    known: HashMap<PathBuf, (Stat, String)>,
    /// Files looked up by this call: only they are written back, so files of target dirs that
    /// are gone drop out.
    used: std::collections::HashSet<PathBuf>,
    dirty: bool,
    now: i64,
}

impl HashCache {
    /// Load the cache file `file` (missing or damaged: start empty); `None` keeps nothing.
    pub fn load(file: Option<PathBuf>) -> HashCache {
        let mut known = HashMap::new();
        if let Some(text) = file.as_ref().and_then(|f| {
            crate::limits::read_regular(f, crate::limits::DEP_FILE)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        }) {
            for line in text.lines() {
                let f: Vec<&str> = line.split(' ').collect();
                if f.len() != 9 {
                    continue;
                }
                let n = |i: usize| f[i].parse::<i64>().ok();
                let (Some(dev), Some(ino), Some(size), Some(ms), Some(mn), Some(cs), Some(cn)) =
                    (n(0), n(1), n(2), n(3), n(4), n(5), n(6))
                else {
                    continue;
                };
                // Digests of earlier versions (SHA-256, 64 digits) are not this version's.
                if f[7].len() != FILE_DIGEST_HEX {
                    continue;
                }
                let Some(path) = unhex(f[8]) else { continue };
                known.insert(
                    PathBuf::from(std::ffi::OsString::from_vec(path)),
                    ((dev as u64, ino as u64, size as u64, ms, mn, cs, cn), f[7].to_string()),
                );
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        HashCache {
            file,
            known,
            used: Default::default(),
            dirty: false,
            now,
        }
    }

    /// XXH3-128 of the file at `path` (hex), or `None` when it cannot be read. The files are this
    /// machine's (sources, the crates and libraries a link reads — up to hundreds of MB for a bin):
    /// as for compilers (identity.rs) and C headers, a crafted collision would need someone who can
    /// already write them, and XXH3 reads at memory speed where SHA-256 made every link of a cold
    /// build hash its dependencies several times slower.
    pub fn digest(&mut self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let stat = stat_of(&meta);
        self.used.insert(path.to_path_buf());
        if let Some((s, d)) = self.known.get(path)
            && *s == stat
        {
            return Some(d.clone());
        }
        if !meta.is_file() || meta.len() > crate::limits::INPUT_FILE {
            // A FIFO would block the read, a device never end; neither is a source.
            return None;
        }
        let digest = crate::identity::content_digest(path).ok()?;
        // Compare the stat again: a file that changed while we read it is not remembered.
        let after = std::fs::metadata(path).ok().map(|m| stat_of(&m));
        let settled = stat.3.max(stat.5) < self.now - RACY_SECS;
        if after == Some(stat) && settled {
            self.known.insert(path.to_path_buf(), (stat, digest.clone()));
            self.dirty = true;
        }
        Some(digest)
    }

    /// Write the cache back if it learnt anything (temp file + rename); failures only cost speed.
    pub fn save(&self) {
        let stale = self.known.keys().any(|k| !self.used.contains(k));
        let (Some(file), true) = (&self.file, self.dirty || stale) else {
            return;
        };
        let mut text = String::new();
        for (p, (s, d)) in self.known.iter().filter(|(k, _)| self.used.contains(*k)) {
            text.push_str(&format!(
                "{} {} {} {} {} {} {} {d} {}\n",
                s.0,
                s.1,
                s.2,
                s.3,
                s.4,
                s.5,
                s.6,
                hex(p.as_os_str().as_bytes())
            ));
        }
        let _ = crate::atomic::write(file, text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip_and_cap() {
        let mut m = Manifest::default();
        for i in 0..10 {
            m.add(Candidate {
                result_key: format!("{i:064x}"),
                sources: vec![(PathBuf::from(format!("src/a b{i}.rs")), "ab".repeat(32))],
                env: vec![("X".into(), Some("1\n2".into())), ("Y".into(), None)],
                link: vec![(PathBuf::from("\0profile/deps/liba.rlib"), "cd".repeat(32))],
            });
        }
        assert_eq!(m.candidates.len(), MAX_CANDIDATES);
        assert_eq!(m.candidates[0].result_key, format!("{:064x}", 9));
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn hash_cache_remembers_settled_files_only() {
        let d = std::env::temp_dir().join(format!("cachepot-hc-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("a.rs");
        std::fs::write(&f, "fn a() {}").unwrap();
        let cache_file = d.join("cache");
        let mut hc = HashCache::load(Some(cache_file.clone()));
        let fresh = hc.digest(&f).unwrap();
        assert_eq!(fresh, hex(&xxhash_rust::xxh3::xxh3_128(b"fn a() {}").to_be_bytes()));
        // Just written: not settled, so not remembered.
        assert!(hc.known.is_empty());
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(100);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut hc = HashCache::load(Some(cache_file.clone()));
        hc.now += 10; // the ctime moved with set_modified; pretend time passed
        hc.digest(&f).unwrap();
        hc.save();
        let mut hc2 = HashCache::load(Some(cache_file.clone()));
        assert_eq!(hc2.known.get(&f).map(|k| k.1.clone()), Some(fresh));
        // A call that no longer uses the file drops it.
        let g = d.join("b.rs");
        std::fs::write(&g, "fn b() {}").unwrap();
        hc2.digest(&g).unwrap();
        hc2.save();
        assert!(HashCache::load(Some(cache_file)).known.is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
