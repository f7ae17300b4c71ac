//! cachepot: one binary, many names. argv[0] decides what this call is; nothing else happens here.
//! - `cachepot --option …`      → the command line (cli.rs)
//! - `cachepot <compiler> …`    → a compile through the cache, compiler named by the first argument
//! - `gcc …` (a shim symlink)   → a compile through the cache, compiler named by argv[0]
//!
//! The entry point is C's `main`, not std's: std's start-up (`lang_start`) also finds the main
//! thread's stack guard by reading and parsing /proc/self/maps, and sets up stack-overflow handlers
//! on an alternate signal stack — ~20 system calls and 9 % of the instructions of a small hit, whose
//! cost is mostly start-up. What of that start-up a compiler cache needs is done in `main` below.

#![no_main]

use cachepot::{call, cli};

use std::ffi::OsString;
use std::os::raw::{c_char, c_int};
use std::path::Path;

/// The process entry point (called by the C runtime; `std::env::args_os` still works: std reads
/// argv from glibc's init hook). Does what std's start-up does that matters here, then runs.
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    // SAFETY: runs first, on the only thread, before any file is opened or std I/O is used.
    unsafe {
        standard_fds_open();
        // As std's start-up: a write into a closed pipe is an EPIPE error, not a signal. Children
        // get the default disposition back (std's spawn and exec reset it).
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // As std's start-up: a panic outside a compile's own guard (call::guarded) exits with 101
    // after the panic hook's message; it must not unwind into C.
    let status = std::panic::catch_unwind(dispatch).unwrap_or(101);
    std::process::exit(status)
}

/// Started with fd 0, 1 or 2 closed, the first file opened would take its number, and an object
/// file could end up written into "stdout": open /dev/null on each closed one, as std's start-up
/// does (one `poll`, no system call more when all three are open).
///
/// # Safety
/// Only before any other file is opened (the numbers /dev/null takes are the lowest free).
unsafe fn standard_fds_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    let closed: Vec<bool> = if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0 {
        fds.iter().map(|p| p.revents & libc::POLLNVAL != 0).collect()
    } else {
        // poll can fail (EINVAL under a low RLIMIT_NOFILE, ENOMEM): ask each fd instead.
        (0..3)
            .map(|fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF))
            .collect()
    };
    for _ in closed.iter().filter(|c| **c) {
        if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == -1 {
            // No /dev/null: std's start-up aborts too, rather than let a file take fd 1.
            std::process::abort();
        }
    }
}

/// What argv[0] and the first argument ask for; the exit status.
fn dispatch() -> i32 {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().cloned().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == "cachepot" || name.starts_with("cachepot-") || name.starts_with("cachepot.") {
        match args.get(1) {
            Some(first) if !first.to_string_lossy().starts_with('-') => {
                let compiler = args.remove(1);
                call::run(call::Invocation {
                    compiler,
                    args: args.split_off(1),
                })
            }
            _ => {
                let strs: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
                // A report piped into `head` (or a pager quit early) ends quietly, as any Unix tool's
                // does, instead of a panic on the broken pipe. Not for the coordinator (it writes to
                // clients that may go away) nor for compile calls (Rust's default: EPIPE, no signal).
                if !strs.iter().any(|a| a.contains("coordinator") || a.contains("server")) {
                    // SAFETY: sets a signal disposition before any thread is started.
                    unsafe {
                        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                    }
                }
                let refs: Vec<&str> = strs.iter().map(String::as_str).collect();
                match <cli::Cli as argh::FromArgs>::from_args(&["cachepot"], &refs[1..]) {
                    Ok(c) => cli::run(c),
                    Err(early) => {
                        let ok = early.status.is_ok();
                        if ok {
                            println!("{}", early.output);
                        } else {
                            eprintln!("cachepot: error: {}", early.output.trim_end());
                        }
                        if ok { 0 } else { 2 }
                    }
                }
            }
        }
    } else {
        call::run(call::Invocation {
            compiler: OsString::from(name),
            args: args.split_off(1),
        })
    }
}
