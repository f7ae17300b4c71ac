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

    // These tests change the process environment; they run in one test so they cannot race.
    #[test]
    fn only_pipes_count_as_a_jobserver() {
        use std::os::fd::AsRawFd;
        // SAFETY: no other test in this binary reads MAKEFLAGS.
        let set = |v: &str| unsafe { std::env::set_var("MAKEFLAGS", v) };

        set(" -j4");
        assert!(matches!(detect(), Outer::None), "no jobserver named");

        // A regular file sitting on the named descriptor numbers: not a jobserver.
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let fd = file.as_raw_fd();
        set(&format!(" -j2 --jobserver-auth={fd},{fd}"));
        assert!(matches!(detect(), Outer::Unusable { .. }), "{:?}", detect());

        // Closed descriptors (an ordinary make recipe): not a jobserver either.
        set(" -j2 --jobserver-auth=900,901");
        assert!(matches!(detect(), Outer::Unusable { .. }), "{:?}", detect());

        // A real jobserver pipe: usable, and our descriptors stay open afterwards.
        let js = jobserver::Client::new(2).unwrap();
        let mut cmd = std::process::Command::new("true");
        js.configure_make(&mut cmd);
        let flags = cmd
            .get_envs()
            .find(|(k, _)| *k == "MAKEFLAGS")
            .unwrap()
            .1
            .unwrap()
            .to_owned();
        set(&flags.to_string_lossy());
        let found = detect();
        assert!(matches!(found, Outer::Usable { .. }), "{found:?}");
        drop(found);
        js.acquire().unwrap().drop_without_releasing();
        js.release_raw().unwrap();
        // SAFETY: as above.
        unsafe { std::env::remove_var("MAKEFLAGS") };
        drop(file);
    }
}
