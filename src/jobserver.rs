//! The outer jobserver (GNU make's or cargo's), as far as cachepot is concerned: something to
//! recognise and leave alone. A compile started by make or cargo already holds one of their job
//! slots, so cachepot never takes a token from it (taking a second one deadlocks `make -j2` with
//! two compiles each waiting for the other's token), and the compiler it runs inherits the
//! jobserver exactly as cachepot got it (MAKEFLAGS and the descriptors: rustc and `gcc -flto=auto`
//! use it). Machine-wide limits are the coordinator's job (src/coordinator/).
//!
//! MAKEFLAGS may name descriptors that are closed in this process: GNU make 4.3 passes them only
//! to `+` recipes and recursive `$(MAKE)` lines. Such a number may even be a file cachepot itself
//! opened, so the descriptors are checked (they must be pipes or a fifo) before anything believes
//! there is a jobserver; this module only reads them, through duplicates it closes again.

/// What MAKEFLAGS (or CARGO_MAKEFLAGS / MFLAGS) says, once checked.
#[derive(Debug)]
pub enum Outer {
    /// No jobserver named in the environment.
    None,
    /// A usable jobserver (its descriptors are pipes, or its fifo opens); `auth` is the
    /// `--jobserver-auth` value, `variable` where it was found.
    Usable { variable: String, auth: String },
    /// Named, but not usable here — e.g. an ordinary (non-`+`) make recipe, whose jobserver
    /// descriptors are closed or reused. Treated exactly like `None`.
    Unusable { variable: String, why: String },
}

impl Outer {
    pub fn describe(&self) -> String {
        match self {
            Outer::None => "none".into(),
            Outer::Usable { variable, auth } => {
                format!(
                    "{variable} names jobserver {auth}; its token is the one this compile runs on, passed to the compiler untouched"
                )
            }
            Outer::Unusable { variable, why } => format!("{variable} names a jobserver, but {why}; treated as none"),
        }
    }
}

/// Look at the environment's jobserver without taking a token and without changing our
/// descriptors (the `jobserver` crate duplicates or reopens them, and checks they are pipes).
pub fn detect() -> Outer {
    // SAFETY: `from_env_ext(true)` checks each named descriptor with fstat (must be a pipe or
    // fifo) and works on its own duplicate (or a fresh open of /dev/fd/N), which the returned
    // client closes when dropped; our own descriptor N stays open and unchanged for the compiler.
    let found = unsafe { jobserver::Client::from_env_ext(true) };
    let (variable, value) = found
        .var
        .map(|(name, value)| (name.to_string(), value.to_string_lossy().into_owned()))
        .unwrap_or_default();
    match found.client {
        Ok(_client) => Outer::Usable {
            variable,
            auth: value
                .split_whitespace()
                .rfind(|w| w.starts_with("--jobserver-auth=") || w.starts_with("--jobserver-fds="))
                .unwrap_or_default()
                .to_string(),
        },
        Err(e) => match e.kind() {
            jobserver::FromEnvErrorKind::NoEnvVar | jobserver::FromEnvErrorKind::NoJobserver => Outer::None,
            _ => Outer::Unusable {
                variable,
                why: e.to_string(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Run `detect()` in a child copy of this test binary, with MAKEFLAGS set and descriptors
    /// placed at given numbers, so this process's environment is never changed under other tests.
    fn detect_in_child(makeflags: &str, place: &[(RawFd, RawFd)]) -> String {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "jobserver::tests::print_detect", "--ignored", "--nocapture"])
            .env("MAKEFLAGS", makeflags)
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("MFLAGS");
        let place = place.to_vec();
        // SAFETY: only dup2 (async-signal-safe) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for &(from, to) in &place {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("DETECTED "))
            .unwrap_or_else(|| panic!("child printed no result: {text}"))
            .to_string()
    }

    #[test]
    #[ignore = "run by only_pipes_count_as_a_jobserver, in a child process"]
    fn print_detect() {
        println!("DETECTED {:?}", detect());
    }

    #[test]
    fn only_pipes_count_as_a_jobserver() {
        assert_eq!(detect_in_child(" -j4", &[]), "None");

        // Closed descriptors (an ordinary make recipe): not a jobserver.
        let got = detect_in_child(" -j2 --jobserver-auth=60,61", &[]);
        assert!(got.starts_with("Unusable"), "{got}");

        // A regular file sitting on the named numbers (one cachepot opened, say): not one either.
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let fd = file.as_raw_fd();
        let got = detect_in_child(" -j2 --jobserver-auth=60,61", &[(fd, 60), (fd, 61)]);
        assert!(got.starts_with("Unusable"), "{got}");

        // A real jobserver pipe on those numbers: usable.
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills the two-element array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (r, w) = (fds[0], fds[1]);
        let got = detect_in_child(" -j2 --jobserver-auth=60,61", &[(r, 60), (w, 61)]);
        assert!(got.starts_with("Usable"), "{got}");
        assert!(got.contains("--jobserver-auth=60,61"), "{got}");
        // The same through a fifo (GNU make 4.4's style).
        let dir = std::env::temp_dir().join(format!("cachepot-js-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let got = detect_in_child(&format!(" -j2 --jobserver-auth=fifo:{}", fifo.display()), &[]);
        assert!(got.starts_with("Usable"), "{got}");
        // SAFETY: closing the two pipe ends this test opened.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
