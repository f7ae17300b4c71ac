//! The coordinator daemon: one thread running a smol executor over a Unix socket. It grants
//! machine-wide compile slots (a counting semaphore whose permits live in the connection that
//! asked, so a closed or killed client frees them) and answers status and stop requests. It exits
//! after `idle_timeout` seconds with no connection. Every connection is checked to come from this
//! user (SO_PEERCRED), on top of the 0700 directory; a malformed message only ends that connection.

use super::client::{ensure_private_dir, open_lock, socket_path};
use super::protocol::{self, ProtocolError, Reply, Request};
use crate::config::CoordinatorConfig;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::lock::{Semaphore, SemaphoreGuardArc};
use smol::{Async, LocalExecutor, Timer};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run the coordinator until it is stopped or idle. Returns an error when it cannot start; when
/// another coordinator already runs it logs that and returns Ok.
pub fn run(cfg: &CoordinatorConfig) -> io::Result<()> {
    let dir = &cfg.dir;
    ensure_private_dir(dir)?;
    let lock = open_lock(dir)?;
    if !take_lock(&lock)? {
        log::info!(target: "coordinator", "another coordinator is already running in {}", dir.display());
        return Ok(());
    }
    // We hold the lock, so any socket file left here is a dead coordinator's.
    let sock = socket_path(dir);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    raise_fd_limit();
    log::info!(
        target: "coordinator",
        "listening on {} with {} compile slots, idle timeout {}",
        sock.display(),
        cfg.jobs(),
        if cfg.idle_timeout.value == 0 { "never".to_string() } else { format!("{} s", cfg.idle_timeout.value) }
    );
    let result = serve(listener, cfg);
    let _ = std::fs::remove_file(&sock);
    drop(lock);
    log::info!(target: "coordinator", "stopped");
    result
}

/// Take the exclusive lock, retrying briefly: a client checking whether the lock is free holds
/// it for a moment.
fn take_lock(lock: &std::fs::File) -> io::Result<bool> {
    for _ in 0..40 {
        match lock.try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(5)),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    Ok(false)
}

/// Each waiting or holding client is one descriptor; lift the soft limit to the hard one.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Shared by every connection task; single-threaded, so plain `Cell`s.
struct State {
    slots: u32,
    permits: Arc<Semaphore>,
    started: Instant,
    idle_timeout: Duration,
    last_activity: Cell<Instant>,
    connections: Cell<u64>,
    in_use: Cell<u64>,
    waiting: Cell<u64>,
    peak_in_use: Cell<u64>,
    granted: Cell<u64>,
    waits: Cell<u64>,
    refused: Cell<u64>,
    stop: smol::channel::Sender<()>,
}

impl State {
    fn figures(&self) -> BTreeMap<String, u64> {
        let mut f = BTreeMap::new();
        f.insert("version".into(), protocol::VERSION as u64);
        f.insert("pid".into(), std::process::id() as u64);
        f.insert("slots".into(), self.slots as u64);
        f.insert("slots_in_use".into(), self.in_use.get());
        f.insert("slots_waiting".into(), self.waiting.get());
        f.insert("slots_peak".into(), self.peak_in_use.get());
        f.insert("slots_granted".into(), self.granted.get());
        f.insert("slot_waits".into(), self.waits.get());
        f.insert("connections".into(), self.connections.get());
        f.insert("refused".into(), self.refused.get());
        f.insert("uptime_s".into(), self.started.elapsed().as_secs());
        f.insert("idle_timeout_s".into(), self.idle_timeout.as_secs());
        f
    }

    fn touch(&self) {
        self.last_activity.set(Instant::now());
    }
}

/// A granted slot; the permit goes back to the semaphore when this is dropped.
struct HeldSlot {
    _permit: SemaphoreGuardArc,
    state: Rc<State>,
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        self.state.in_use.set(self.state.in_use.get() - 1);
    }
}

/// Counts a connection for the idle timer for as long as its task lives.
struct Connected(Rc<State>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
        self.0.touch();
    }
}

fn serve(listener: UnixListener, cfg: &CoordinatorConfig) -> io::Result<()> {
    let ex = LocalExecutor::new();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let state = Rc::new(State {
        slots: cfg.jobs(),
        permits: Arc::new(Semaphore::new(cfg.jobs() as usize)),
        started: Instant::now(),
        idle_timeout: Duration::from_secs(cfg.idle_timeout.value),
        last_activity: Cell::new(Instant::now()),
        connections: Cell::new(0),
        in_use: Cell::new(0),
        waiting: Cell::new(0),
        peak_in_use: Cell::new(0),
        granted: Cell::new(0),
        waits: Cell::new(0),
        refused: Cell::new(0),
        stop: stop_tx,
    });
    let listener = Async::new(listener)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let owner = unsafe { libc::geteuid() };
    smol::block_on(ex.run(async {
        let accept = async {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        state.connections.set(state.connections.get() + 1);
                        state.touch();
                        let guard = Connected(state.clone());
                        ex.spawn(connection(stream, state.clone(), owner, guard)).detach();
                    }
                    Err(e) => {
                        // Out of descriptors, most likely: back off instead of spinning.
                        log::warn!(target: "coordinator", "accept failed: {e}");
                        Timer::after(Duration::from_millis(100)).await;
                    }
                }
            }
        };
        let until_stopped_or_idle = async {
            loop {
                let tick = async {
                    Timer::after(Duration::from_secs(1)).await;
                    false
                };
                let stopped = async { stop_rx.recv().await.is_ok() };
                if stopped.or(tick).await {
                    log::info!(target: "coordinator", "stop requested");
                    return;
                }
                if !state.idle_timeout.is_zero()
                    && state.connections.get() == 0
                    && state.last_activity.get().elapsed() >= state.idle_timeout
                {
                    log::info!(target: "coordinator", "idle for {:?}; exiting", state.idle_timeout);
                    return;
                }
            }
        };
        accept.or(until_stopped_or_idle).await;
    }));
    Ok(())
}

/// One client connection: its requests in order, its slots held until it closes.
async fn connection(stream: Async<UnixStream>, state: Rc<State>, owner: u32, _connected: Connected) {
    if let Err(why) = check_peer(stream.get_ref(), owner) {
        state.refused.set(state.refused.get() + 1);
        log::warn!(target: "coordinator", "refused a connection: {why}");
        let _ = (&stream).write_all(&Reply::Refused(why).encode()).await;
        return;
    }
    let mut held: Vec<HeldSlot> = Vec::new();
    loop {
        let request = match read_request(&stream).await {
            Ok(Some(r)) => r,
            Ok(None) => return, // closed: `held` drops here and frees its slots
            Err(Fault::Io(e)) => {
                log::debug!(target: "coordinator", "connection ended: {e}");
                return;
            }
            Err(Fault::Protocol(e)) => {
                state.refused.set(state.refused.get() + 1);
                log::warn!(target: "coordinator", "refused a message: {e}");
                let _ = (&stream).write_all(&Reply::Refused(e.to_string()).encode()).await;
                return;
            }
        };
        state.touch();
        let reply = match request {
            Request::Acquire => match grant(&stream, &state).await {
                Some((slot, waited)) => {
                    held.push(slot);
                    Reply::Granted { waited }
                }
                None => return, // the client went away (or spoke) while waiting
            },
            Request::Release => {
                held.pop();
                continue;
            }
            Request::Status => Reply::Status(state.figures()),
            Request::Stop => {
                let _ = (&stream).write_all(&Reply::Stopping.encode()).await;
                let _ = state.stop.try_send(());
                return;
            }
        };
        if (&stream).write_all(&reply.encode()).await.is_err() {
            return;
        }
    }
}

/// Wait for a permit, giving up if the client closes the connection meanwhile (a client must not
/// send anything while it waits, so any byte also ends the wait). While it waits, the client hears
/// Queued every HEARTBEAT: silence is how it tells a hung coordinator from a busy one.
async fn grant(stream: &Async<UnixStream>, state: &Rc<State>) -> Option<(HeldSlot, bool)> {
    enum Wake {
        Got(SemaphoreGuardArc),
        Gone,
        Tick,
    }
    let (permit, waited) = match state.permits.try_acquire_arc() {
        Some(p) => (p, false),
        None => {
            state.waiting.set(state.waiting.get() + 1);
            state.waits.set(state.waits.get() + 1);
            // One acquire future for the whole wait, so the client keeps its place in the queue.
            let mut acquire = std::pin::pin!(state.permits.acquire_arc());
            let mut got = None;
            let mut w = stream;
            if w.write_all(&Reply::Queued.encode()).await.is_ok() {
                loop {
                    let wake = async { Wake::Got((&mut acquire).await) }
                        .or(async {
                            let mut byte = [0u8; 1];
                            let _ = (&*stream).read(&mut byte).await;
                            Wake::Gone
                        })
                        .or(async {
                            Timer::after(protocol::HEARTBEAT).await;
                            Wake::Tick
                        })
                        .await;
                    match wake {
                        Wake::Got(p) => {
                            got = Some(p);
                            break;
                        }
                        Wake::Gone => break,
                        Wake::Tick => {
                            if w.write_all(&Reply::Queued.encode()).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            state.waiting.set(state.waiting.get() - 1);
            (got?, true)
        }
    };
    let in_use = state.in_use.get() + 1;
    state.in_use.set(in_use);
    state.peak_in_use.set(state.peak_in_use.get().max(in_use));
    state.granted.set(state.granted.get() + 1);
    Some((
        HeldSlot {
            _permit: permit,
            state: state.clone(),
        },
        waited,
    ))
}

enum Fault {
    Io(io::Error),
    Protocol(ProtocolError),
}

async fn read_request(stream: &Async<UnixStream>) -> Result<Option<Request>, Fault> {
    let mut prefix = [0u8; 4];
    let mut r = stream;
    match r.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Fault::Io(e)),
    }
    let len = protocol::check_length(prefix).map_err(Fault::Protocol)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.map_err(Fault::Io)?;
    Request::decode(&payload).map(Some).map_err(Fault::Protocol)
}

/// The peer's uid must be ours: the directory's mode is the first line of defence, this the second.
fn check_peer(stream: &UnixStream, owner: u32) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a ucred of the size we pass.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot read the peer's credentials: {}",
            io::Error::last_os_error()
        ));
    }
    if cred.uid != owner {
        return Err(format!(
            "uid {} (pid {}) is not the coordinator's owner (uid {owner})",
            cred.uid, cred.pid
        ));
    }
    Ok(())
}
