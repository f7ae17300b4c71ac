//! cachepot: one binary, many names. argv[0] decides what this call is; nothing else happens here.
//! - `cachepot --option …`      → the command line (cli.rs)
//! - `cachepot <compiler> …`    → a compile through the cache, compiler named by the first argument
//! - `gcc …` (a shim symlink)   → a compile through the cache, compiler named by argv[0]

use cachepot::{call, cli};

use std::ffi::OsString;
use std::path::Path;

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().cloned().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let status = if name == "cachepot" || name.starts_with("cachepot-") || name.starts_with("cachepot.") {
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
    };
    std::process::exit(status);
}
