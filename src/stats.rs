//! Statistics: counters in sharded files under `<cache dir>/stats/`, so that no daemon is needed and
//! counts stay exact when many compiles run at once. A process updates the shard picked by its pid
//! (as ccache does), under an exclusive lock on that shard's lock file; the data file is replaced by
//! rename, so readers never see a half-written shard and need no lock.
//!
//! Shard grammar: lines of `<counter name> <decimal count>`; unknown names are kept, so older and
//! newer versions can share a cache directory.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const SHARDS: u32 = 16;

/// How one compile call ended. Every call counts exactly once as one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    #[allow(dead_code)] // direct mode
    HitDirect,
    HitPreprocessed,
    Miss,
    NotCacheable(String),
}

impl Outcome {
    fn counter(&self) -> String {
        match self {
            Outcome::HitDirect => "hit.direct".into(),
            Outcome::HitPreprocessed => "hit.preprocessed".into(),
            Outcome::Miss => "miss".into(),
            Outcome::NotCacheable(reason) => format!("not_cacheable.{reason}"),
        }
    }
}

pub type Counters = BTreeMap<String, u64>;

/// Add one call's outcome and its cache errors (`error.<kind>` counters) to the stats. Failures
/// here are logged and otherwise ignored: statistics never break a build.
pub fn record(cache_dir: &Path, outcome: &Outcome, errors: &[&str]) {
    let mut add = Counters::new();
    add.insert(outcome.counter(), 1);
    for e in errors {
        *add.entry(format!("error.{e}")).or_default() += 1;
    }
    if let Err(e) = add_counters(cache_dir, &add) {
        log::warn!(target: "stats", "could not update statistics in {}: {e}", cache_dir.display());
    }
}

/// Add arbitrary counters (used by record and by other modules' own figures).
pub fn add_counters(cache_dir: &Path, add: &Counters) -> std::io::Result<()> {
    let dir = cache_dir.join("stats");
    fs::create_dir_all(&dir)?;
    let shard = std::process::id() % SHARDS;
    let _lock = lock_shard(&dir, shard)?;
    let path = shard_path(&dir, shard);
    let mut counters = read_shard(&path);
    for (k, v) in add {
        *counters.entry(k.clone()).or_default() += v;
    }
    write_shard(&path, &counters)
}

/// The sum of all shards.
pub fn read_all(cache_dir: &Path) -> Counters {
    let dir = cache_dir.join("stats");
    let mut total = Counters::new();
    for shard in 0..SHARDS {
        for (k, v) in read_shard(&shard_path(&dir, shard)) {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

/// Reset every counter to zero.
pub fn zero(cache_dir: &Path) -> std::io::Result<()> {
    let dir = cache_dir.join("stats");
    if !dir.exists() {
        return Ok(());
    }
    for shard in 0..SHARDS {
        let _lock = lock_shard(&dir, shard)?;
        let path = shard_path(&dir, shard);
        if path.exists() {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn shard_path(dir: &Path, shard: u32) -> PathBuf {
    dir.join(format!("{shard:02}"))
}

/// Lock a shard for read-modify-write; the lock is released when the file is dropped (or when the
/// process dies, so a killed compile never wedges the stats).
fn lock_shard(dir: &Path, shard: u32) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{shard:02}.lock")))?;
    f.lock()?;
    Ok(f)
}

fn read_shard(path: &Path) -> Counters {
    let mut counters = Counters::new();
    let Ok(text) = fs::read_to_string(path) else {
        return counters;
    };
    for line in text.lines() {
        if let Some((name, value)) = line.rsplit_once(' ')
            && let Ok(v) = value.parse::<u64>()
        {
            *counters.entry(name.to_string()).or_default() += v;
        }
    }
    counters
}

fn write_shard(path: &Path, counters: &Counters) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = File::create(&tmp)?;
    let mut text = String::new();
    for (k, v) in counters {
        text.push_str(&format!("{k} {v}\n"));
    }
    f.write_all(text.as_bytes())?;
    drop(f);
    fs::rename(&tmp, path)
}

/// The figures `--show-stats` prints, derived from raw counters.
#[derive(Debug, Default)]
pub struct Summary {
    pub hits_direct: u64,
    pub hits_preprocessed: u64,
    pub misses: u64,
    pub not_cacheable: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    /// Counters of other modules (remote, coordinator, …), shown as they are.
    pub other: BTreeMap<String, u64>,
}

impl Summary {
    pub fn from_counters(c: &Counters) -> Summary {
        let mut s = Summary::default();
        for (k, &v) in c {
            if v == 0 {
                continue;
            }
            match k.as_str() {
                "hit.direct" => s.hits_direct += v,
                "hit.preprocessed" => s.hits_preprocessed += v,
                "miss" => s.misses += v,
                _ => {
                    if let Some(r) = k.strip_prefix("not_cacheable.") {
                        s.not_cacheable.insert(r.to_string(), v);
                    } else if let Some(r) = k.strip_prefix("error.") {
                        s.errors.insert(r.to_string(), v);
                    } else {
                        s.other.insert(k.clone(), v);
                    }
                }
            }
        }
        s
    }

    pub fn hits(&self) -> u64 {
        self.hits_direct + self.hits_preprocessed
    }

    pub fn not_cacheable_total(&self) -> u64 {
        self.not_cacheable.values().sum()
    }

    pub fn requests(&self) -> u64 {
        self.hits() + self.misses + self.not_cacheable_total()
    }

    /// Hits as a percentage of cacheable calls (hits + misses).
    pub fn hit_rate(&self) -> f64 {
        let cacheable = self.hits() + self.misses;
        if cacheable == 0 {
            0.0
        } else {
            100.0 * self.hits() as f64 / cacheable as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_updates_are_exact() {
        let dir = std::env::temp_dir().join(format!("cachepot-stats-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let d = dir.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        record(&d, &Outcome::Miss, &["write-failed"]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = Summary::from_counters(&read_all(&dir));
        assert_eq!(s.misses, 400);
        assert_eq!(s.errors["write-failed"], 400);
        zero(&dir).unwrap();
        assert_eq!(Summary::from_counters(&read_all(&dir)).requests(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
