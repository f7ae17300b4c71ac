//! Shared test harness: each test gets its own temp dir and cache dir, runs the real `cachepot`
//! binary with real compilers, and reads `--show-stats --json` the way a user would.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub fn cachepot_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cachepot"))
}

/// A scratch directory for one test, removed when dropped (kept when CACHEPOT_KEEP_TEST_DIRS=1).
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "cachepot-it-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TestDir { path }
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        write_under(&self.path, rel, content)
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }
}

/// Write `content` to `root/rel`, making the directories on the way; the file's path.
pub fn write_under(root: &Path, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    p
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os("CACHEPOT_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A cachepot environment: a work dir and a cache dir, with a clean CACHEPOT_* environment.
pub struct Env {
    pub dir: TestDir,
    pub cache: PathBuf,
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let dir = TestDir::new(name);
        let cache = dir.join("cache");
        Env {
            dir,
            cache,
            extra_env: Vec::new(),
        }
    }

    pub fn set(&mut self, k: &str, v: impl Into<String>) {
        self.extra_env.push((k.to_string(), v.into()));
    }

    /// A command running `program` in the work dir with this env's cache settings.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.dir.path);
        for (k, _) in std::env::vars() {
            if k.starts_with("CACHEPOT_") {
                c.env_remove(&k);
            }
        }
        // `cargo test` runs under rustup, which hands RUSTUP_TOOLCHAIN to every child; a user's
        // shell has none. cachepot must pick the toolchain itself (rust/toolchain.rs), so the
        // tests do not lean on it (a test that wants one sets it).
        c.env_remove("RUSTUP_TOOLCHAIN");
        c.env("CACHEPOT_DIR", &self.cache);
        c.env("CACHEPOT_CONF", "");
        c.env("XDG_CONFIG_HOME", self.dir.join("xdg-config"));
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// `cachepot <args…>` in the work dir.
    pub fn cachepot(&self, args: &[&str]) -> Output {
        self.cmd(cachepot_bin()).args(args).output().expect("run cachepot")
    }

    /// `cachepot <args…>`, asserting success; returns stderr.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.cachepot(args);
        assert!(
            out.status.success(),
            "cachepot {args:?} failed:\nstdout: {}\nstderr: {}",
            s(&out.stdout),
            s(&out.stderr)
        );
        out
    }

    pub fn stats(&self) -> serde_json::Value {
        let out = self.ok(&["--show-stats", "--json"]);
        serde_json::from_slice(&out.stdout).expect("stats JSON")
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or_else(|| panic!("no stat {name}"))
    }

    pub fn not_cacheable(&self, reason: &str) -> u64 {
        self.stats()["not_cacheable_reasons"][reason].as_u64().unwrap_or(0)
    }

    /// Calls not cacheable because of this option or feature (too_hard / extra_outputs).
    pub fn not_cacheable_detail(&self, detail: &str) -> u64 {
        self.stats()["not_cacheable_details"][detail].as_u64().unwrap_or(0)
    }

    pub fn error_kind(&self, kind: &str) -> u64 {
        self.stats()["error_kinds"][kind].as_u64().unwrap_or(0)
    }
}

pub fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Fail loudly (never skip) when a tool the tests need is missing: CI installs them all.
pub fn require_tool(name: &str) -> PathBuf {
    which::which(name)
        .unwrap_or_else(|_| panic!("`{name}` is not installed; run .ci/run (or install it) before the tests"))
}

/// Copy gcc's driver and cc1 into `root` the way a fresh install would lay them out.
pub fn install_gcc(root: &Path) -> PathBuf {
    let gcc = require_tool("gcc").canonicalize().unwrap();
    let cc1 = Command::new(&gcc).arg("-print-prog-name=cc1").output().unwrap();
    let cc1 = PathBuf::from(String::from_utf8(cc1.stdout).unwrap().trim());
    // …/lib/gcc/<triplet>/<version>/cc1: keep the last four components.
    let rel: PathBuf = cc1
        .components()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("lib").join(rel.parent().unwrap())).unwrap();
    std::fs::copy(&gcc, root.join("bin/gcc")).unwrap();
    std::fs::copy(&cc1, root.join("lib").join(&rel)).unwrap();
    // gcc's own headers (stddef.h, …) beside cc1.
    let st = Command::new("cp")
        .arg("-r")
        .arg(cc1.parent().unwrap().join("include"))
        .arg(root.join("lib").join(rel.parent().unwrap()))
        .status()
        .unwrap();
    assert!(st.success());
    let driver = root.join("bin/gcc");
    let found = Command::new(&driver).arg("-print-prog-name=cc1").output().unwrap();
    assert!(
        s(&found.stdout).trim().starts_with(root.to_str().unwrap()),
        "the copied driver runs the copied cc1: {}",
        s(&found.stdout)
    );
    driver
}
