//! Statistics: counters in sharded files under `<cache dir>/stats/`, so that no daemon is needed and
//! counts stay exact when many compiles run at once. A process updates the shard picked by its pid
//! (as ccache does), under an exclusive lock on that shard's lock file, by rewriting it in place
//! (one `pwrite` into the block reserved for it); readers take the lock shared, so they never see a
//! shard half-written. Not temp + rename: replacing the file frees the old one's block on every
//! compile call, and on a file system mounted with `discard` that waits for the device (~2 ms a
//! call on the machine this was measured on).
//!
//! Shard grammar: lines of `<counter name> <decimal count>`; unknown names are kept, so older and
//! newer versions can share a cache directory.
//!
//! A full file system (no blocks or no inodes) must not lose counts silently: every shard is
//! created with `SHARD_RESERVE` bytes allocated to it, all 16 at once, the first time the stats
//! directory is used, and rewritten inside that space; counters only grow, so a rewrite never
//! shortens the text. When the shard cannot be rewritten in place, a new file replaces it (temp +
//! rename), and that is counted (`stats_write_failed`).
//! Where nothing can be written at all (read-only, another user's), `--show-stats` says the cache
//! directory is not usable (cli.rs).

use crate::compiler::NotCacheable;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const SHARDS: u32 = 16;
/// Space allocated to every shard up front: one block (a shard with every counter is ~1-2 KiB).
const SHARD_RESERVE: i64 = 4096;

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
    /// An entry larger than the whole cache size limit; not kept.
    EntryTooLarge,
    /// A statistics shard could not be rewritten in its own space: written as a new file instead.
    StatsWriteFailed,
    /// The coordinator answered garbage or went away mid-answer; the compile ran without a slot.
    CoordinatorFailed,
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
        Fault::EntryTooLarge,
        Fault::StatsWriteFailed,
        Fault::CoordinatorFailed,
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
            Fault::EntryTooLarge => "entry_too_large",
            Fault::StatsWriteFailed => "stats_write_failed",
            Fault::CoordinatorFailed => "coordinator_failed",
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
            Fault::EntryTooLarge => "entry larger than the cache size limit (not kept)",
            Fault::StatsWriteFailed => "statistics written as a new file (no room in the shard's own space)",
            Fault::CoordinatorFailed => "coordinator answered garbage or went away",
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
    let shard = std::process::id() % SHARDS;
    let path = shard_path(&dir, shard);
    if !path.is_file() {
        fs::create_dir_all(&dir)?;
        reserve_shards(&dir);
    }
    let _lock = lock_shard(&dir, shard)?;
    let mut counters = read_shard(&path);
    for (k, v) in add {
        *counters.entry(k.clone()).or_default() += v;
    }
    match rewrite_in_place(&path, &counters) {
        Ok(()) => Ok(()),
        Err(e) => {
            // No room in the space the shard holds: a new file, and say so.
            *counters.entry(Fault::StatsWriteFailed.counter()).or_default() += 1;
            write_shard(&path, &counters).map_err(|e2| {
                remove_temp_files(&dir);
                std::io::Error::new(e2.kind(), format!("in place: {e}; as a new file: {e2}"))
            })
        }
    }
}

/// Make sure the shards exist with their space reserved (one stat when they do): called when a
/// compile call starts, before its entries can take the last blocks or inodes of a small disk.
pub fn prepare(cache_dir: &Path) {
    let dir = cache_dir.join("stats");
    if !shard_path(&dir, std::process::id() % SHARDS).is_file() && fs::create_dir_all(&dir).is_ok() {
        reserve_shards(&dir);
    }
}

/// Create every missing shard with its space reserved, so that a file system that fills up later
/// still has room for the counts. Failures are fine: the shard is then made when first written.
fn reserve_shards(dir: &Path) {
    for shard in 0..SHARDS {
        let path = shard_path(dir, shard);
        if let Ok(f) = OpenOptions::new().write(true).create_new(true).open(&path) {
            reserve(&f);
        }
        // The lock file too: without it no update can happen once inodes run out.
        let _ = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(format!("{shard:02}.lock")));
    }
}

/// Allocate `SHARD_RESERVE` bytes to `f` without changing its length (best effort).
fn reserve(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a descriptor we own; KEEP_SIZE leaves the visible length alone, so
    // readers still see exactly the text written.
    unsafe {
        libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, SHARD_RESERVE);
    }
}

/// The sum of all shards.
pub fn read_all(cache_dir: &Path) -> Counters {
    let dir = cache_dir.join("stats");
    let mut total = Counters::new();
    for shard in 0..SHARDS {
        // Shared lock: a shard being rewritten in place is never read half-way.
        let _lock = File::open(dir.join(format!("{shard:02}.lock"))).and_then(|f| f.lock_shared().map(|()| f));
        for (k, v) in read_shard(&shard_path(&dir, shard)) {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

/// Reset every counter to zero. A cache dir that is not a directory is an error.
pub fn zero(cache_dir: &Path) -> std::io::Result<()> {
    if !crate::store::disk::check_cache_dir(cache_dir)? {
        return Ok(());
    }
    let dir = cache_dir.join("stats");
    if !dir.exists() {
        return Ok(());
    }
    for shard in 0..SHARDS {
        let _lock = lock_shard(&dir, shard)?;
        let path = shard_path(&dir, shard);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path)?,
            Ok(_) => fs::remove_file(&path)?,
            Err(_) => {}
        }
    }
    remove_temp_files(&dir);
    reserve_shards(&dir);
    Ok(())
}

/// Remove temporary shard files that a failed or killed update left behind.
fn remove_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().contains(".tmp") {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn shard_path(dir: &Path, shard: u32) -> PathBuf {
    dir.join(format!("{shard:02}"))
}

/// Lock a shard for read-modify-write; the lock is released when the file is dropped (or when the
/// process dies, so a killed compile never wedges the stats).
fn lock_shard(dir: &Path, shard: u32) -> std::io::Result<File> {
    let f = crate::store::disk::open_control_file(&dir.join(format!("{shard:02}.lock")), false)?;
    f.lock()?;
    Ok(f)
}

/// A shard's counters. Bounded: a shard is a few KiB; anything larger is not ours and reads as
/// empty, as does a damaged one (a directory in its place is removed by the next writer).
fn read_shard(path: &Path) -> Counters {
    let mut counters = Counters::new();
    let Ok(bytes) = crate::limits::read_regular(path, 1 << 20) else {
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            let _ = fs::remove_dir_all(path);
        }
        return counters;
    };
    let text = String::from_utf8_lossy(&bytes);
    for line in text.lines() {
        if let Some((name, value)) = line.rsplit_once(' ')
            && let Ok(v) = value.parse::<u64>()
        {
            *counters.entry(current_name(name).into_owned()).or_default() += v;
        }
    }
    counters
}

fn shard_text(counters: &Counters) -> String {
    let mut text = String::new();
    for (k, v) in counters {
        text.push_str(&format!("{k} {v}\n"));
    }
    text
}

/// Replace the shard by a new file (temp + rename) with its space reserved; nothing is left
/// behind when that fails.
fn write_shard(path: &Path, counters: &Counters) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        reserve(&f);
        f.write_all(shard_text(counters).as_bytes())?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Rewrite the shard in place (the caller holds its lock): needs no new inode, and no new block
/// while the text fits the space the shard holds. The usual way to update a shard.
fn rewrite_in_place(path: &Path, counters: &Counters) -> std::io::Result<()> {
    let f = OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
    let text = shard_text(counters);
    f.write_all_at(text.as_bytes(), 0)?;
    f.set_len(text.len() as u64)
}

/// The figures `--show-stats` prints, derived from raw counters.
#[derive(Debug, Default)]
pub struct Summary {
    /// Compile calls that met a bad setting and ran without the cache (bad_setting.rs).
    pub config_errors: u64,
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
                crate::bad_setting::COUNTER => s.config_errors += v,
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
        self.config_errors + self.hits() + self.misses + self.not_cacheable_total()
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

    #[test]
    fn damaged_stats_are_repaired() {
        let dir = std::env::temp_dir().join(format!("cachepot-stats-damage-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        record(&dir, &Outcome::Miss, &[]);
        let shard = std::process::id() % SHARDS;
        let stats = dir.join("stats");
        // Every shard exists from the first update on (space reserved while there was room).
        assert!((0..SHARDS).all(|s| shard_path(&stats, s).is_file()));
        // A directory in place of the lock and of the data, and a temp file left by a crash.
        fs::remove_file(stats.join(format!("{shard:02}.lock"))).unwrap();
        fs::create_dir_all(stats.join(format!("{shard:02}.lock/x"))).unwrap();
        fs::remove_file(shard_path(&stats, shard)).unwrap();
        fs::create_dir_all(shard_path(&stats, shard).join("x")).unwrap();
        fs::write(stats.join("03.tmp123"), b"").unwrap();
        record(&dir, &Outcome::Miss, &[]);
        assert_eq!(Summary::from_counters(&read_all(&dir)).misses, 1);
        fs::remove_file(shard_path(&stats, (shard + 1) % SHARDS)).unwrap();
        fs::create_dir_all(shard_path(&stats, (shard + 1) % SHARDS).join("x")).unwrap();
        zero(&dir).unwrap();
        assert!(!stats.join("03.tmp123").exists());
        fs::remove_dir_all(&dir).unwrap();
        fs::write(&dir, b"").unwrap();
        assert!(zero(&dir).is_err(), "zeroing a regular file reported success");
        fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn in_place_rewrite_keeps_counting() {
        let dir = std::env::temp_dir().join(format!("cachepot-stats-inplace-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("00");
        let mut c = Counters::new();
        c.insert("miss".into(), 5);
        rewrite_in_place(&path, &c).unwrap();
        c.insert("miss".into(), 12345);
        rewrite_in_place(&path, &c).unwrap();
        assert_eq!(read_shard(&path)["miss"], 12345);
        fs::remove_dir_all(&dir).unwrap();
    }
}
