//! The coordinator: an optional per-user daemon that caps how many real compiler processes run at
//! once on this machine, across every build (three `make -j8`, ninja, CI agents), and reports its
//! own figures in `--show-stats`. It is not in a hit's way: a hit never contacts it, and every
//! fault talking to it degrades to compiling without a slot.
//!
//! - `server.rs`: the daemon (smol, one thread), listening on `<dir>/sock` in a 0700 directory.
//! - `client.rs`: the blocking side used by compile calls and the command line.
//! - `protocol.rs`: the versioned, length-prefixed messages.
//!
//! Statistics stay in the cache directory's shards (stats.rs); the coordinator holds nothing that
//! is lost when it dies. Compile calls that had to wait for a slot count `coordinator.slot_waits`
//! and `coordinator.slot_wait_ms` there; the live figures come from the running coordinator.

mod client;
pub use client::ensure_private_dir;
pub mod protocol;
mod server;

use crate::config::{Config, CoordinatorMode};
use crate::stats::Fault;
use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A machine-wide compile slot, held until dropped. Dropping closes the connection, which is what
/// frees the slot in the coordinator — so a compile killed by SIGKILL frees its slot too.
#[must_use = "the slot is freed as soon as it is dropped"]
pub struct Slot {
    _conn: Option<UnixStream>,
}

impl Slot {
    const NONE: Slot = Slot { _conn: None };
}

/// After the coordinator was found silent, compile calls do not try it again for this long: a
/// hung coordinator costs one bounded wait per window, not one per compile.
const SILENT_BACKOFF: Duration = Duration::from_secs(60);

/// Take a compile slot before starting a real compiler process (a miss, a preprocessor run).
/// With the coordinator off this returns at once and touches nothing. With `auto`, an absent
/// coordinator is started in the background and this call goes on without a slot. Every wait is
/// bounded: a coordinator silent for `client::SILENCE`, or one that queues this call for longer
/// than `max_wait`, is given up on, and the call compiles without a slot (counted, logged once).
pub fn slot(cfg: &Config) -> Slot {
    if cfg.coordinator.mode.value == CoordinatorMode::Off {
        return Slot::NONE;
    }
    if log::log_enabled!(target: "coordinator", log::Level::Debug) {
        log::debug!(target: "coordinator", "outer jobserver: {}", crate::jobserver::detect().describe());
    }
    let marker = cfg.coordinator.dir.join("unresponsive");
    if let Ok(m) = std::fs::metadata(&marker)
        && m.modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < SILENT_BACKOFF)
    {
        log::debug!(target: "coordinator", "the coordinator was silent less than {SILENT_BACKOFF:?} ago; compiling without a slot");
        count(cfg, &Fault::CoordinatorUnresponsive.counter(), 1);
        return Slot::NONE;
    }
    let started = Instant::now();
    match client::acquire(
        &cfg.coordinator.dir,
        Duration::from_secs(cfg.coordinator.max_wait.value),
    ) {
        Ok((conn, waited)) => {
            let waited_for = started.elapsed();
            log::debug!(target: "coordinator", "got a compile slot (waited: {waited}, {waited_for:?})");
            if waited {
                record_wait(cfg, waited_for);
            }
            if std::fs::remove_file(&marker).is_ok() {
                log::warn!(target: "coordinator", "the coordinator answers again");
            }
            Slot { _conn: Some(conn) }
        }
        Err(client::AcquireError::Absent) => {
            log::debug!(target: "coordinator", "no coordinator running; starting one in the background");
            client::spawn_in_background(cfg);
            Slot::NONE
        }
        Err(client::AcquireError::Unresponsive) => {
            // Whoever creates the marker says so; the others (and later calls) stay quiet.
            let first = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
                .is_ok();
            if !first {
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&marker)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            }
            let msg = format!(
                "the coordinator ({}) did not answer within {:?}; compiling without a slot, and not asking it again for {:?}",
                cfg.coordinator.dir.display(),
                client::SILENCE,
                SILENT_BACKOFF
            );
            if first {
                log::warn!(target: "coordinator", "{msg}");
            } else {
                log::debug!(target: "coordinator", "{msg}");
            }
            count(cfg, &Fault::CoordinatorUnresponsive.counter(), 1);
            Slot::NONE
        }
        Err(client::AcquireError::WaitedTooLong) => {
            log::warn!(
                target: "coordinator",
                "no compile slot after waiting {} s (CACHEPOT_COORDINATOR_MAX_WAIT); compiling without one",
                cfg.coordinator.max_wait.value
            );
            count(cfg, &Fault::CoordinatorWaitTimeout.counter(), 1);
            Slot::NONE
        }
        Err(client::AcquireError::Other(e)) => {
            // A garbled answer, a connection cut by a dying coordinator, a refusal: counted too.
            log::warn!(target: "coordinator", "no compile slot, compiling anyway: {e}");
            count(cfg, &Fault::CoordinatorFailed.counter(), 1);
            Slot::NONE
        }
    }
}

fn count(cfg: &Config, name: &str, n: u64) {
    let mut add = crate::stats::Counters::new();
    add.insert(name.into(), n);
    if let Err(e) = crate::stats::add_counters(&cfg.dir.value, &add) {
        log::warn!(target: "coordinator", "could not count {name}: {e}");
    }
}

fn record_wait(cfg: &Config, waited: Duration) {
    let mut add = crate::stats::Counters::new();
    add.insert("coordinator.slot_waits".into(), 1);
    add.insert("coordinator.slot_wait_ms".into(), waited.as_millis() as u64);
    if let Err(e) = crate::stats::add_counters(&cfg.dir.value, &add) {
        log::warn!(target: "coordinator", "could not count a slot wait: {e}");
    }
}

/// `cachepot --start-coordinator`: start it in the background and return once it answers.
pub fn start(cfg: &Config) -> Result<String, String> {
    let mut msg = client::start_and_wait(cfg)?;
    if cfg.coordinator.mode.value == CoordinatorMode::Off {
        msg.push_str("\nnote: compile calls use it only with CACHEPOT_COORDINATOR=auto");
    }
    Ok(msg)
}

/// `cachepot --start-coordinator --foreground`: run it here, logging to stderr, until it stops.
pub fn run_foreground(cfg: &Config) -> Result<(), String> {
    init_foreground_log(cfg);
    server::run(&cfg.coordinator).map_err(|e| e.to_string())
}

/// `cachepot --stop-coordinator`: ask it to stop and wait until it has.
pub fn stop(cfg: &Config) -> Result<String, String> {
    client::stop_and_wait(&cfg.coordinator.dir)
}

/// The running coordinator's live figures, or `None` when none answers.
pub fn status(cfg: &Config) -> Option<BTreeMap<String, u64>> {
    client::status(&cfg.coordinator.dir).ok()
}

fn init_foreground_log(cfg: &Config) {
    let mut b = env_logger::Builder::new();
    b.parse_filters(cfg.log.value.as_deref().unwrap_or("info"));
    b.target(env_logger::Target::Stderr);
    crate::logging::format_lines(&mut b, "cachepot-coordinator");
    let _ = b.try_init();
}
