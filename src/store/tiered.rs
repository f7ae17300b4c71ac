//! The local disk in front of a remote store. A lookup tries the local level, then the remote; a
//! remote hit fills the local level, so the next lookup of that key stays on this machine. A put
//! goes to both levels (the remote only when not read-only).
//!
//! Remote faults never reach the caller: the first one of a call is logged, counted as
//! `error.<kind>`, and starts the back-off (see `remote.rs`), after which the remote is skipped by
//! this call and by every compile until the back-off ends. The call's remote counters go to the
//! statistics in one update when the store is dropped, so compile.rs needs to know none of this.

use super::remote::Backoff;
use super::{Storage, StoreError};
use crate::stats::{self, Counters};
use std::cell::RefCell;
use std::path::PathBuf;

pub struct TieredStore {
    /// The local disk (seen through trust.rs: what it returns is verified when trust is on).
    local: Option<Box<dyn Storage>>,
    /// The remote (seen through trust.rs: what it returns is verified before the local disk keeps it).
    remote: Box<dyn Storage>,
    read_only: bool,
    backoff: Backoff,
    cache_dir: PathBuf,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// Whether the remote may be used by this call (false: in a back-off period, or failed).
    usable: bool,
    /// Whether the back-off skip was counted already.
    skip_counted: bool,
    /// Whether the remote failed in this call (its failure is counted, not a skip).
    failed: bool,
    /// This call's remote counters, flushed to the statistics on drop.
    counters: Counters,
}

impl TieredStore {
    pub fn new(
        local: Option<Box<dyn Storage>>,
        remote: Box<dyn Storage>,
        read_only: bool,
        backoff: Backoff,
        usable: bool,
        cache_dir: PathBuf,
    ) -> TieredStore {
        TieredStore {
            local,
            remote,
            read_only,
            backoff,
            cache_dir,
            state: RefCell::new(State {
                usable,
                ..State::default()
            }),
        }
    }

    fn count(&self, name: &str) {
        *self.state.borrow_mut().counters.entry(name.to_string()).or_default() += 1;
    }

    /// Whether to talk to the remote now (not failed in this call, not in a back-off period). A
    /// call that finds the remote backing off counts once, on its first use of the remote.
    fn remote_usable(&self) -> bool {
        let mut st = self.state.borrow_mut();
        if !st.usable && !st.skip_counted && !st.failed {
            st.skip_counted = true;
            *st.counters.entry("remote.skipped-backoff".into()).or_default() += 1;
            log::debug!(target: "remote", "skipping {}: backing off after a recent failure", self.remote.describe());
        }
        st.usable
    }

    /// A remote fault: log it (once per call: the remote is not used again by this call), count
    /// it, and start the back-off for every compile.
    fn remote_failed(&self, op: &str, e: StoreError) {
        log::warn!(
            target: "remote",
            "{} failed on {op}: {e}; compiling without it, and skipping it for {}",
            self.remote.describe(),
            super::remote::format_duration(self.backoff.period)
        );
        self.count(&e.fault().counter());
        let mut st = self.state.borrow_mut();
        st.usable = false;
        st.failed = true;
        drop(st);
        self.backoff.start();
    }
}

impl TieredStore {
    /// The remote's bytes for `key`; a hit fills the local level.
    fn get_remote(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.remote_usable() {
            return Ok(None);
        }
        match self.remote.get(key) {
            Ok(Some(bytes)) => {
                self.count("remote.hit");
                log::debug!(target: "remote", "remote hit {key} ({} bytes)", bytes.len());
                if let Some(local) = &self.local
                    && let Err(e) = local.put(key, &bytes)
                {
                    log::warn!(target: "remote", "cannot keep remote entry {key} locally: {e}");
                    self.count(&e.fault().counter());
                }
                Ok(Some(bytes))
            }
            Ok(None) => {
                self.count("remote.miss");
                Ok(None)
            }
            Err(e) => {
                self.remote_failed("get", e);
                Ok(None)
            }
        }
    }
}

impl Storage for TieredStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(local) = &self.local
            && let Some(bytes) = local.get(key)?
        {
            return Ok(Some(bytes));
        }
        self.get_remote(key)
    }

    fn get_entry(&self, key: &str) -> Result<Option<super::Found>, StoreError> {
        if let Some(local) = &self.local
            && let Some(found) = local.get_entry(key)?
        {
            return Ok(Some(found));
        }
        Ok(self.get_remote(key)?.map(super::Found::Bytes))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let local = match &self.local {
            Some(l) => l.put(key, bytes),
            None => Ok(()),
        };
        if self.read_only {
            self.count("remote.write-skipped-read-only");
        } else if self.remote_usable() {
            if !self.remote.accepts_writes() {
                self.count("remote.write-skipped-read-only");
                return local;
            }
            match self.remote.put(key, bytes) {
                Ok(()) => self.count("remote.write"),
                Err(e) => self.remote_failed("put", e),
            }
        }
        local
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        let local = match &self.local {
            Some(l) => l.remove(key),
            None => Ok(()),
        };
        // An entry that failed verification is removed from the remote too, so other machines
        // stop fetching it; a read-only remote keeps it (we may not write there).
        if !self.read_only
            && self.remote_usable()
            && self.remote.accepts_writes()
            && let Err(e) = self.remote.remove(key)
        {
            self.remote_failed("remove", e);
        }
        local
    }

    fn wants_large_compressed(&self) -> bool {
        // The remote gets the bytes the local level gets (compressed): unless it is not written.
        !self.read_only && self.remote.accepts_writes() || self.local.is_none()
    }

    fn describe(&self) -> String {
        let remote = format!(
            "{}{}",
            self.remote.describe(),
            if self.read_only { " (read-only)" } else { "" }
        );
        match &self.local {
            Some(l) => format!("{}, then {remote}", l.describe()),
            None => remote,
        }
    }
}

impl Drop for TieredStore {
    fn drop(&mut self) {
        let mut counters = std::mem::take(&mut self.state.get_mut().counters);
        for name in self.remote.take_counters() {
            *counters.entry(name.to_string()).or_default() += 1;
        }
        if !counters.is_empty()
            && let Err(e) = stats::add_counters(&self.cache_dir, &counters)
        {
            log::warn!(target: "remote", "could not update statistics in {}: {e}", self.cache_dir.display());
        }
    }
}
