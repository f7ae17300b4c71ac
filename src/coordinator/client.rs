//! The blocking client side of the coordinator: take a slot, ask for status, stop it, start it.
//! Also owns the layout of the private directory both sides use:
//! `<dir>/sock` (the socket, 0600) and `<dir>/lock` (held by the running coordinator for its
//! whole life, so there is never more than one, and a stale socket is safe to replace).

use super::protocol::{self, Reply, Request};
use crate::config::Config;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("sock")
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("lock")
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Create the directory (0700) if needed, and check that only this user can use it: owned by us,
/// a real directory (not a link), no access for group or others. Another user who created it
/// first could otherwise put their own socket there.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = std::fs::symlink_metadata(dir)?;
    if !m.is_dir() || m.uid() != euid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory owned by uid {}; remove it or set XDG_RUNTIME_DIR",
                dir.display(),
                euid()
            ),
        ));
    }
    if m.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The same checks without creating anything (the compile path: one lstat).
fn check_private_dir(dir: &Path) -> Result<(), AcquireError> {
    let m = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(AcquireError::Absent),
        Err(e) => return Err(AcquireError::Other(e)),
    };
    if !m.is_dir() || m.uid() != euid() || m.mode() & 0o077 != 0 {
        return Err(AcquireError::Other(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a private directory of this user; not using it",
                dir.display()
            ),
        )));
    }
    Ok(())
}

/// Open the lock file; the running coordinator holds an exclusive lock on it.
pub fn open_lock(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(lock_path(dir))
}

/// Whether a coordinator holds the lock (is running or starting up).
fn lock_held(dir: &Path) -> bool {
    match open_lock(dir) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

pub enum AcquireError {
    /// No coordinator is listening.
    Absent,
    /// It did not answer within `SILENCE` (stopped, hung, or overloaded past answering).
    Unresponsive,
    /// It kept saying Queued for longer than the configured longest wait.
    WaitedTooLong,
    Other(io::Error),
}

/// A coordinator that says nothing for this long is taken for hung: it repeats Queued every
/// HEARTBEAT while a client waits, and answers everything else at once.
pub const SILENCE: Duration = Duration::from_millis(4 * protocol::HEARTBEAT.as_millis() as u64);

fn connect(dir: &Path) -> Result<UnixStream, AcquireError> {
    check_private_dir(dir)?;
    let stream = connect_bounded(&socket_path(dir), SILENCE).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => AcquireError::Absent,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AcquireError::Unresponsive,
        _ => AcquireError::Other(e),
    })?;
    // Every read and write of a request is bounded too; a hung coordinator cannot hold a compile.
    let _ = stream.set_read_timeout(Some(SILENCE));
    let _ = stream.set_write_timeout(Some(SILENCE));
    Ok(stream)
}

/// `UnixStream::connect`, except that a listener that has stopped accepting (its backlog full)
/// makes it fail after `limit` instead of blocking forever: for Unix sockets the kernel bounds a
/// blocking connect by the socket's send timeout, which std gives no way to set before connecting.
fn connect_bounded(path: &Path, limit: Duration) -> io::Result<UnixStream> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket call; the descriptor is owned by the UnixStream made from it at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket that nothing else owns.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    stream.set_write_timeout(Some(limit))?;
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_un of at least `len` bytes.
    let rc = unsafe { libc::connect(fd, &addr as *const libc::sockaddr_un as *const libc::sockaddr, len) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        // EAGAIN: the send timeout ran out while the backlog stayed full.
        return Err(if e.raw_os_error() == Some(libc::EAGAIN) {
            io::Error::new(io::ErrorKind::TimedOut, "the coordinator is not accepting connections")
        } else {
            e
        });
    }
    Ok(stream)
}

fn refused(msg: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("the coordinator refused: {msg}"),
    )
}

fn unexpected(r: Reply) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply from the coordinator: {r:?}"),
    )
}

fn read_bounded(conn: &mut UnixStream) -> Result<Reply, AcquireError> {
    protocol::read_reply(conn).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AcquireError::Unresponsive,
        _ => AcquireError::Other(e),
    })
}

/// Wait for a slot, at most `max_wait` (and at most SILENCE between two messages); returns the
/// connection that holds it and whether it had to wait.
pub fn acquire(dir: &Path, max_wait: Duration) -> Result<(UnixStream, bool), AcquireError> {
    let started = Instant::now();
    let mut conn = connect(dir)?;
    protocol::write_request(&mut conn, &Request::Acquire).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AcquireError::Unresponsive,
        _ => AcquireError::Other(e),
    })?;
    loop {
        match read_bounded(&mut conn)? {
            Reply::Granted { waited } => return Ok((conn, waited)),
            Reply::Queued if started.elapsed() < max_wait => continue,
            Reply::Queued => return Err(AcquireError::WaitedTooLong),
            Reply::Refused(msg) => return Err(AcquireError::Other(refused(msg))),
            r => return Err(AcquireError::Other(unexpected(r))),
        }
    }
}

fn request(dir: &Path, req: Request) -> Result<Reply, AcquireError> {
    let mut conn = connect(dir)?;
    protocol::write_request(&mut conn, &req).map_err(AcquireError::Other)?;
    read_bounded(&mut conn)
}

pub fn status(dir: &Path) -> Result<BTreeMap<String, u64>, AcquireError> {
    match request(dir, Request::Status)? {
        Reply::Status(figures) => Ok(figures),
        Reply::Refused(msg) => Err(AcquireError::Other(refused(msg))),
        r => Err(AcquireError::Other(unexpected(r))),
    }
}

fn describe(dir: &Path, figures: &BTreeMap<String, u64>) -> String {
    format!(
        "pid {}, {} compile slots, socket {}",
        figures.get("pid").copied().unwrap_or(0),
        figures.get("slots").copied().unwrap_or(0),
        socket_path(dir).display()
    )
}

pub fn stop_and_wait(dir: &Path) -> Result<String, String> {
    match request(dir, Request::Stop) {
        Ok(Reply::Stopping) => {}
        Ok(Reply::Refused(msg)) => return Err(refused(msg).to_string()),
        Ok(r) => return Err(unexpected(r).to_string()),
        Err(AcquireError::Absent) => return Ok("no coordinator was running".into()),
        Err(AcquireError::Other(e)) => return Err(format!("cannot reach the coordinator: {e}")),
        Err(AcquireError::Unresponsive | AcquireError::WaitedTooLong) => {
            return Err(format!(
                "the coordinator ({}) does not answer; find its pid with `fuser {}` and kill it",
                socket_path(dir).display(),
                socket_path(dir).display()
            ));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock_held(dir) {
        if Instant::now() > deadline {
            return Err("the coordinator was asked to stop but is still running after 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok("coordinator stopped".into())
}

pub fn start_and_wait(cfg: &Config) -> Result<String, String> {
    let dir = &cfg.coordinator.dir;
    if let Ok(figures) = status(dir) {
        return Ok(format!("coordinator already running ({})", describe(dir, &figures)));
    }
    ensure_private_dir(dir).map_err(|e| format!("cannot use {}: {e}", dir.display()))?;
    let mut child = spawn_daemon(cfg).map_err(|e| format!("cannot start the coordinator: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match status(dir) {
            Ok(figures) => return Ok(format!("coordinator started ({})", describe(dir, &figures))),
            Err(AcquireError::Other(e)) if e.kind() == io::ErrorKind::PermissionDenied => return Err(e.to_string()),
            Err(_) => {}
        }
        if let Ok(Some(st)) = child.try_wait()
            && !st.success()
            && !lock_held(dir)
        {
            return Err(format!(
                "the coordinator exited at start-up ({st}); run `cachepot --start-coordinator --foreground` to see why"
            ));
        }
        if Instant::now() > deadline {
            return Err("the coordinator did not answer within 10 s of starting".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// From a compile call (`CACHEPOT_COORDINATOR=auto`): start a coordinator unless one is running
/// or starting, and do not wait for it. Several calls racing here may start several; all but one
/// exit at once because they cannot take the lock.
pub fn spawn_in_background(cfg: &Config) {
    let dir = &cfg.coordinator.dir;
    if let Err(e) = ensure_private_dir(dir) {
        log::warn!(target: "coordinator", "cannot use {}: {e}", dir.display());
        return;
    }
    if lock_held(dir) {
        return;
    }
    if let Err(e) = spawn_daemon(cfg) {
        log::warn!(target: "coordinator", "cannot start the coordinator: {e}");
    }
}

/// Start `cachepot --start-coordinator --foreground` detached: its own session, stdio on
/// /dev/null (stderr to the error log when one is configured), cwd `/`, and none of our inherited
/// descriptors — a build's jobserver pipe or output pipe must not stay open in a daemon that
/// outlives the build.
fn spawn_daemon(cfg: &Config) -> io::Result<std::process::Child> {
    let exe = std::env::current_exe()?;
    let stderr = match &cfg.error_log.value {
        Some(p) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(exe);
    cmd.args(["--start-coordinator", "--foreground"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .current_dir("/")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove(crate::locate::GUARD_VAR);
    if cfg.log.value.is_none() {
        // In the background its log is the error log: warnings and up, as for compile calls.
        cmd.env("CACHEPOT_LOG", "warn");
    }
    // SAFETY: only async-signal-safe calls (setsid, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            // Close-on-exec rather than close, so std's own exec-error pipe keeps working.
            for fd in 3..1024 {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}
