//! Statistics: counters in sharded files under `<cache dir>/stats/`, so that no daemon is needed and
//! counts stay exact when many compiles run at once. A process updates the shard picked by its pid
//! (as ccache does), under an exclusive lock on that shard's lock file; the data file is replaced by
//! rename, so readers never see a half-written shard and need no lock.
//!
//! Shard grammar: lines of `<counter name> <decimal count>`; unknown names are kept, so older and
//! newer versions can share a cache directory.

use crate::compiler::NotCacheable;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const SHARDS: u32 = 16;

/// How one compile call ended. Every call counts exactly once as one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    HitDirect,
    HitPreprocessed,
    Miss,
    NotCacheable(NotCacheable),
}

impl Outcome {
    fn counter(&self) -> String {
        match self {
            Outcome::HitDirect => "hit.direct".into(),
            Outcome::HitPreprocessed => "hit.preprocessed".into(),
            Outcome::Miss => "miss".into(),
            Outcome::NotCacheable(reason) => format!("not_cacheable.{}", reason.id()),
        }
    }
}

/// A cache fault met by a call: the call went on (compiling instead), and the fault is counted as
/// `error.<id>`. Ids are stable snake_case names; `describe()` is the human text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Reading an existing entry or output failed (an I/O error other than "not found").
    ReadFailed,
    /// Writing an entry failed (full disk, read-only directory, …).
    WriteFailed,
    RemoteTimeout,
    RemoteUnreachable,
    RemoteAuth,
    RemoteMissingBucket,
    RemoteProtocol,
    /// An entry or manifest failed verification; it was removed.
    CorruptEntry,
    /// A verified entry could not be put in place at the output paths.
    RestoreFailed,
    /// cachepot's own dependency file could not be written (the compile ran without it).
    DepFileFailed,
    /// The coordinator did not answer; the compile ran without a slot.
    CoordinatorUnresponsive,
    /// No slot within CACHEPOT_COORDINATOR_MAX_WAIT; the compile ran without one.
    CoordinatorWaitTimeout,
    /// The configured signing key could not be read; nothing was written to the remote (trust.rs).
    SigningKey,
    /// The cache dir's own signing key could not be read or made; the local level was left out.
    LocalSigningKey,
}

impl Fault {
    pub const ALL: &'static [Fault] = &[
        Fault::ReadFailed,
        Fault::WriteFailed,
        Fault::RemoteTimeout,
        Fault::RemoteUnreachable,
        Fault::RemoteAuth,
        Fault::RemoteMissingBucket,
        Fault::RemoteProtocol,
        Fault::CorruptEntry,
        Fault::RestoreFailed,
        Fault::DepFileFailed,
        Fault::CoordinatorUnresponsive,
        Fault::CoordinatorWaitTimeout,
        Fault::SigningKey,
        Fault::LocalSigningKey,
    ];

    /// The stable statistics id.
    pub fn id(self) -> &'static str {
        match self {
            Fault::ReadFailed => "read_failed",
            Fault::WriteFailed => "write_failed",
            Fault::RemoteTimeout => "remote_timeout",
            Fault::RemoteUnreachable => "remote_unreachable",
            Fault::RemoteAuth => "remote_auth",
            Fault::RemoteMissingBucket => "remote_missing_bucket",
            Fault::RemoteProtocol => "remote_protocol",
            Fault::CorruptEntry => "corrupt_entry",
            Fault::RestoreFailed => "restore_failed",
            Fault::DepFileFailed => "dep_file_failed",
            Fault::CoordinatorUnresponsive => "coordinator_unresponsive",
            Fault::CoordinatorWaitTimeout => "coordinator_wait_timeout",
            Fault::SigningKey => "signing_key",
            Fault::LocalSigningKey => "local_signing_key",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Fault::ReadFailed => "cache read failed",
            Fault::WriteFailed => "cache write failed",
            Fault::RemoteTimeout => "remote store timed out",
            Fault::RemoteUnreachable => "remote store unreachable",
            Fault::RemoteAuth => "remote store refused the credentials",
            Fault::RemoteMissingBucket => "remote bucket or container missing",
            Fault::RemoteProtocol => "remote store answered unexpectedly",
            Fault::CorruptEntry => "corrupt entry removed",
            Fault::RestoreFailed => "could not put a cached output in place",
            Fault::DepFileFailed => "could not write the dependency file in the cache dir",
            Fault::CoordinatorUnresponsive => "coordinator did not answer",
            Fault::CoordinatorWaitTimeout => "no compile slot within the longest wait",
            Fault::SigningKey => "signing key unreadable (nothing written to the remote)",
            Fault::LocalSigningKey => "cache dir's signing key unusable (local level left out)",
        }
    }

    /// The counter name (`error.<id>`).
    pub fn counter(self) -> String {
        format!("error.{}", self.id())
    }
}

pub type Counters = BTreeMap<String, u64>;

/// Add one call's outcome and its cache faults to the stats. Failures here are logged and
/// otherwise ignored: statistics never break a build.
pub fn record(cache_dir: &Path, outcome: &Outcome, faults: &[Fault]) {
    let mut add = Counters::new();
    add.insert(outcome.counter(), 1);
    if let Outcome::NotCacheable(reason) = outcome
        && let Some(detail) = reason.detail()
    {
        add.insert(format!("{DETAIL_PREFIX}{detail}"), 1);
    }
    for f in faults {
        *add.entry(f.counter()).or_default() += 1;
    }
    if let Err(e) = add_counters(cache_dir, &add) {
        log::warn!(target: "stats", "could not update statistics in {}: {e}", cache_dir.display());
    }
}

/// Counts of the options and features behind `too_hard` and `extra_outputs` calls.
const DETAIL_PREFIX: &str = "not_cacheable_detail.";

/// A counter name as this version writes it. Versions before stable ids named not-cacheable
/// reasons by their description and faults with hyphens; such names are read (and rewritten on
/// the shard's next update) under the ids of today.
fn current_name(name: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    if let Some(old) = name.strip_prefix("not_cacheable.") {
        if NotCacheable::ALL.iter().any(|r| r.id() == old) {
            return Cow::Borrowed(name);
        }
        return Cow::Owned(match NotCacheable::from_old_name(old) {
            Some(r) => format!("not_cacheable.{}", r.id()),
            None => "not_cacheable.too_hard".to_string(),
        });
    }
    if let Some(old) = name.strip_prefix("error.")
        && old.contains('-')
    {
        return Cow::Owned(format!("error.{}", old.replace('-', "_")));
    }
    Cow::Borrowed(name)
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
            *counters.entry(current_name(name).into_owned()).or_default() += v;
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
    /// The options and features behind `too_hard` / `extra_outputs`.
    pub not_cacheable_details: BTreeMap<String, u64>,
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
                    if let Some(d) = k.strip_prefix(DETAIL_PREFIX) {
                        s.not_cacheable_details.insert(d.to_string(), v);
                    } else if let Some(r) = k.strip_prefix("not_cacheable.") {
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
    fn ids_are_unique_snake_case() {
        let mut ids: Vec<&str> = NotCacheable::ALL.iter().map(NotCacheable::id).collect();
        ids.extend(Fault::ALL.iter().map(|f| f.id()));
        for id in &ids {
            assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{id}");
        }
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "ids are unique");
    }

    #[test]
    fn old_counter_names_read_as_ids() {
        assert_eq!(
            current_name("not_cacheable.linking (no -c or -S)"),
            "not_cacheable.linking"
        );
        assert_eq!(
            current_name("not_cacheable.compile failed"),
            "not_cacheable.compile_failed"
        );
        assert_eq!(
            current_name("not_cacheable.informational call"),
            "not_cacheable.informational"
        );
        assert_eq!(
            current_name("not_cacheable.-fdump-* writes extra files"),
            "not_cacheable.too_hard"
        );
        assert_eq!(current_name("not_cacheable.too_hard"), "not_cacheable.too_hard");
        assert_eq!(current_name("error.corrupt-entry"), "error.corrupt_entry");
        assert_eq!(current_name("remote.skipped-backoff"), "remote.skipped-backoff");
    }

    #[test]
    fn concurrent_updates_are_exact() {
        let dir = std::env::temp_dir().join(format!("cachepot-stats-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let d = dir.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        record(&d, &Outcome::Miss, &[Fault::WriteFailed]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = Summary::from_counters(&read_all(&dir));
        assert_eq!(s.misses, 400);
        assert_eq!(s.errors["write_failed"], 400);
        zero(&dir).unwrap();
        assert_eq!(Summary::from_counters(&read_all(&dir)).requests(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
