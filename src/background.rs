//! Storing a miss after the build has moved on. Once the compiler's outputs are in place and read
//! back into memory, a call with a large store ahead (compressing and writing a 20 MB rlib or a
//! linked binary takes tens of milliseconds) forks: the parent exits with the compiler's status at
//! once, so make, ninja or cargo go on, and the child — stdio on /dev/null, in its own session —
//! keys, compresses, stores and counts from the snapshot the parent read. The build never waits
//! for the cache, and what is stored is what the compiler wrote (a later build step that rewrites
//! the output in place cannot reach the snapshot).
//!
//! Each store in flight holds an exclusive `flock` on `<dir>/pending/<key>`. A later call whose
//! lookup misses checks for its key there and waits for that store (a second build started
//! straight after the first still hits); `--show-stats` and `--zero-stats` wait for all of them,
//! so the figures they show are complete. A child that dies leaves an unlocked file that waiters
//! pass over.
//!
//! Used by the Rust flow (rlibs and linked outputs of MBs); a C compile stores in line, its store
//! being ~1 % of the compile. Not used where forking is unsafe or pointless: with the REAPI
//! backend (its runtime and connection live in the parent) and when `background_store` is off.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Below this many bytes of output a store costs less than the fork: it is done in line.
pub const WORTH_BYTES: usize = 256 << 10;

/// How long a lookup waits for a store of its own key, and a report for all of them.
const WAIT_FOR_KEY: Duration = Duration::from_secs(20);
const WAIT_FOR_ALL: Duration = Duration::from_secs(60);

/// Which side of the fork this process is on.
pub enum Detached {
    /// Return the compiler's status now; the child stores.
    Parent,
    /// Store, then exit; the store is marked pending until this is dropped.
    Child(Pending),
}

/// The mark of a store in flight: removed (and unlocked) when dropped.
pub struct Pending {
    path: PathBuf,
    _lock: File,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        // This store's end, for the next call's look at whether orphans are reaped here.
        if let Some(pending) = self.path.parent() {
            let _ = std::fs::write(pending.join(".last"), format!("{} {}", std::process::id(), unix_ms()));
        }
    }
}

fn pending_dir(dir: &Path) -> PathBuf {
    dir.join("pending")
}

/// Fork so that the store under `key` finishes in the background. `None`: store in line (the
/// pending mark could not be made, another call is storing the same key, or fork failed).
pub fn detach(dir: &Path, key: &str) -> Option<Detached> {
    let pending = pending_dir(dir);
    std::fs::create_dir_all(&pending).ok()?;
    if !orphans_are_reaped(&pending) {
        return None;
    }
    let path = pending.join(key);
    // Made under a name of its own and locked before it takes the key's name, so that a file at
    // the key's name is always held by a live store or by none.
    let (tmp, file) = crate::atomic::TempFile::beside(&path, 0o600).ok()?;
    if !try_lock(&file, libc::LOCK_EX) {
        return None;
    }
    if path.exists() && !try_lock(&File::open(&path).ok()?, libc::LOCK_SH) {
        // The same result is being stored by another call right now.
        return None;
    }
    tmp.persist(&path).ok()?;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: no other thread of this process runs at this point (the flows join their reader
    // threads, and the REAPI runtime, the one that starts threads, is excluded by the caller).
    match unsafe { libc::fork() } {
        -1 => {
            let _ = std::fs::remove_file(&path);
            None
        }
        0 => {
            // SAFETY: plain system calls on descriptors this process owns.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    for fd in 0..3 {
                        libc::dup2(null, fd);
                    }
                    if null > 2 {
                        libc::close(null);
                    }
                }
            }
            Some(Detached::Child(Pending { path, _lock: file }))
        }
        _ => {
            // The lock stays with the child: flock belongs to the open file, which the child
            // shares; closing this process's descriptor does not release it.
            drop(file);
            Some(Detached::Parent)
        }
    }
}

/// Whether this configuration may fork after a lookup: not with the REAPI backend, whose runtime
/// and HTTP/2 connection were made in this process (every other backend is plain blocking I/O).
pub fn forkable(cfg: &crate::config::Config) -> bool {
    !matches!(
        cfg.remote.as_ref().map(|r| &r.backend),
        Some(crate::store::remote::Backend::Reapi(_))
    )
}

/// How long a finding that orphans are not reaped here holds before it is checked again.
const NO_REAPER_FOR: Duration = Duration::from_secs(24 * 3600);

/// The store outlives its parent, so it ends as a child of PID 1 or of a subreaper. A container
/// whose PID 1 is the build itself or `tail -f /dev/null` (GitHub Actions' container jobs) never
/// reaps it: each store would leave a zombie, and under a pids limit enough of them would fail the
/// build's own forks. So the last store sent to the background is looked at: still a zombie, and
/// this cache dir stores in line for a day (`pending/.no-reaper`), at the cost of one zombie.
fn orphans_are_reaped(pending: &Path) -> bool {
    let marker = pending.join(".no-reaper");
    if std::fs::metadata(&marker)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < NO_REAPER_FOR))
    {
        return false;
    }
    // "<pid> <ms since the epoch>", written by a background store as it ends. A reaper takes an
    // ended child within milliseconds: one still a zombie seconds after it ended is never taken.
    let last = std::fs::read_to_string(pending.join(".last")).unwrap_or_default();
    let mut f = last.split_whitespace().map(str::parse::<u64>);
    if let (Some(Ok(pid)), Some(Ok(ended))) = (f.next(), f.next())
        && unix_ms().saturating_sub(ended) > UNREAPED_AFTER_MS
        && u32::try_from(pid).is_ok_and(is_zombie)
    {
        log::warn!(
            "a finished background store was never reaped (this PID 1 does not reap orphans); storing in line (see CACHEPOT_BACKGROUND_STORE)"
        );
        let _ = std::fs::write(&marker, b"");
        return false;
    }
    true
}

/// How long an ended store may stay a zombie before its reaper counts as absent.
const UNREAPED_AFTER_MS: u64 = 3000;

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether process `pid` has ended and waits to be reaped (state Z in /proc/<pid>/stat).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

fn try_lock(f: &File, how: libc::c_int) -> bool {
    // SAFETY: flock on a descriptor owned by `f`.
    unsafe { libc::flock(f.as_raw_fd(), how | libc::LOCK_NB) == 0 }
}

/// If a store of `key` is in flight, wait (bounded) until it ends. True when there was one.
pub fn wait_for(dir: &Path, key: &str) -> bool {
    match File::open(pending_dir(dir).join(key)) {
        Ok(f) => {
            wait_unlocked(&f, Instant::now() + WAIT_FOR_KEY);
            true
        }
        Err(_) => false,
    }
}

/// Wait (bounded) for every store in flight, before a report reads the counters.
pub fn wait_for_all(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(pending_dir(dir)) else {
        return;
    };
    let until = Instant::now() + WAIT_FOR_ALL;
    // Dot files are this module's notes (`.last`, `.no-reaper`) and marks not yet in place.
    for e in entries
        .flatten()
        .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
    {
        if let Ok(f) = File::open(e.path())
            && wait_unlocked(&f, until)
        {
            // Left by a store that died (a live one removes its mark before unlocking it).
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Wait until nothing holds `f`'s lock, or `until`; true when it is free.
fn wait_unlocked(f: &File, until: Instant) -> bool {
    loop {
        if try_lock(f, libc::LOCK_SH) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_mark_is_waited_for_and_a_dead_one_is_not() {
        let dir = std::env::temp_dir().join(format!("cachepot-background-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!wait_for(&dir, "k"), "nothing pending");
        std::fs::create_dir_all(pending_dir(&dir)).unwrap();
        let path = pending_dir(&dir).join("k");
        let held = File::create(&path).unwrap();
        assert!(try_lock(&held, libc::LOCK_EX));
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
        });
        let t = Instant::now();
        assert!(wait_for(&dir, "k"));
        assert!(t.elapsed() >= Duration::from_millis(90), "waited for the holder");
        released.join().unwrap();
        // The holder is gone and its file left behind: no wait.
        let t = Instant::now();
        wait_for_all(&dir);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(!path.exists(), "a dead store's mark is cleared");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_last_store_left_unreaped_turns_background_stores_off() {
        let dir = std::env::temp_dir().join(format!("cachepot-reaper-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pending = pending_dir(&dir);
        std::fs::create_dir_all(&pending).unwrap();
        assert!(orphans_are_reaped(&pending), "nothing known yet");
        // A child that ended and is not waited for yet: what an unreaped store looks like.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let t = Instant::now();
        while !is_zombie(pid) && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(is_zombie(pid));
        // Just ended: its reaper may not have run yet.
        std::fs::write(pending.join(".last"), format!("{pid} {}", unix_ms())).unwrap();
        assert!(orphans_are_reaped(&pending), "a zombie of a moment ago proves nothing");
        std::fs::write(pending.join(".last"), format!("{pid} {}", unix_ms() - 10_000)).unwrap();
        assert!(!orphans_are_reaped(&pending));
        child.wait().unwrap();
        assert!(!is_zombie(pid));
        assert!(!orphans_are_reaped(&pending), "remembered for a day");
        wait_for_all(&dir);
        assert!(pending.join(".no-reaper").exists(), "reports leave the notes alone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
