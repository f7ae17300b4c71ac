//! Rust through the cache, as a cargo user runs it: `RUSTC_WRAPPER=cachepot cargo build` of a real
//! workspace of crates.io crates (serde with derive, serde_json, regex, a build script compiling C
//! with the cc crate), direct `rustc` calls, the `rustc` shim and `cargo clippy`.
//! Crates come from the registry into the ordinary CARGO_HOME, so they download once for all tests.
mod common;
mod remote_support;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A workspace: `util` (leaf, reads an `env!` variable), `core_lib` (serde derive, serde_json,
/// regex, util, and C code built by a build script with cc), `app` (a binary using core_lib).
fn write_workspace(dir: &Path) {
    let w = |rel: &str, text: &str| {
        common::write_under(dir, rel, text);
    };
    w(
        "Cargo.toml",
        "[workspace]\nmembers = [\"util\", \"core_lib\", \"app\"]\nresolver = \"2\"\n",
    );
    // Pinned versions: which crates read OUT_DIR (TARGET_DIR_CRATES) depends on them.
    w("Cargo.lock", include_str!("data/rust-workspace.lock"));
    w(
        "util/Cargo.toml",
        "[package]\nname = \"util\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    w(
        "util/src/lib.rs",
        "pub fn greeting() -> &'static str {\n    env!(\"CACHEPOT_TEST_GREETING\")\n}\n",
    );
    w(
        "core_lib/Cargo.toml",
        "[package]\nname = \"core_lib\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         serde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\nregex = \"1\"\n\
         util = { path = \"../util\" }\n\n[build-dependencies]\ncc = \"1\"\n",
    );
    w(
        "core_lib/build.rs",
        "fn main() {\n    cc::Build::new().file(\"c/add.c\").compile(\"add\");\n    \
         println!(\"cargo:rerun-if-changed=c/add.c\");\n}\n",
    );
    w("core_lib/c/add.c", "int cachepot_add(int a, int b) { return a + b; }\n");
    w(
        "core_lib/src/lib.rs",
        r#"use serde::{Deserialize, Serialize};

extern "C" {
    fn cachepot_add(a: i32, b: i32) -> i32;
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Report {
    pub greeting: String,
    pub numbers: Vec<i32>,
    pub sum: i32,
}

pub fn report(text: &str) -> String {
    let re = regex::Regex::new(r"\d+").unwrap();
    let numbers: Vec<i32> = re.find_iter(text).map(|m| m.as_str().parse().unwrap()).collect();
    let sum = numbers.iter().fold(0, |acc, n| unsafe { cachepot_add(acc, *n) });
    let r = Report { greeting: util::greeting().to_string(), numbers, sum };
    serde_json::to_string(&r).unwrap()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let back: super::Report = serde_json::from_str(&super::report("1 and 2")).unwrap();
        assert_eq!(back.sum, 3);
    }
}
"#,
    );
    w(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         core_lib = { path = \"../core_lib\" }\n",
    );
    w(
        "app/src/main.rs",
        "fn main() {\n    println!(\"{}\", core_lib::report(\"3 apples and 4 pears\"));\n}\n",
    );
}

/// A cargo command in `ws`, with the outer cargo's variables removed (these tests run under
/// cargo), incremental compilation off, and cachepot as the wrapper when `cached`.
fn cargo(env: &Env, ws: &Path, cached: bool, args: &[&str]) -> Output {
    let mut c = env.cmd(require_tool("cargo"));
    c.current_dir(ws);
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k.starts_with("RUSTC") || k.starts_with("RUSTFLAGS") {
            c.env_remove(&k);
        }
    }
    c.env("CARGO_INCREMENTAL", "0");
    c.env("CACHEPOT_TEST_GREETING", "hello");
    c.env("CACHEPOT_ERROR_LOG", env.dir.join("cachepot.log"));
    c.env("CACHEPOT_LOG", "rust=info");
    if cached {
        c.env("RUSTC_WRAPPER", cachepot_bin());
    }
    for (k, v) in &env.extra_env {
        c.env(k, v);
    }
    let out = c.args(args).output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\nstdout: {}\nstderr: {}",
        s(&out.stdout),
        s(&out.stderr)
    );
    out
}

/// Crate names per outcome ("hit", "miss") from the log since the last call, which it empties,
/// and the number of log lines per outcome (a crate may be built twice, with different features).
fn outcomes(env: &Env) -> BTreeMap<String, BTreeSet<String>> {
    outcome_lines(env)
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

fn outcome_lines(env: &Env) -> BTreeMap<String, Vec<String>> {
    // A store finishing in the background logs its miss when it ends: --show-stats waits for them.
    env.ok(&["--show-stats"]);
    let log = env.dir.join("cachepot.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.split("] crate ").nth(1)
            && let Some((name, outcome)) = rest.split_once(": ")
        {
            // "hit (1.2 ms)" is a hit.
            let outcome = outcome.split(" (").next().unwrap_or_default();
            m.entry(outcome.to_string()).or_default().push(name.to_string());
        }
    }
    m
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every `.rlib` and `.rmeta` under `dir/debug/deps`, by file name.
fn libraries(target: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(target.join("debug/deps")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".rlib") || name.ends_with(".rmeta") {
            m.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
    m
}

fn run_app(target: &Path) -> String {
    let out = Command::new(target.join("debug/app")).output().expect("run app");
    assert!(out.status.success());
    s(&out.stdout)
}

/// Crates that read files from their OUT_DIR in the target dir (serde and serde_core `include!`
/// one) and crates built on them: with the target dir as an implicit base they hit in a new one.
const TARGET_DIR_CRATES: &[&str] = &["serde", "serde_core", "serde_json", "core_lib"];

#[test]
fn cargo_workspace_hits_across_target_dirs() {
    let mut env = Env::new("rust-ws");
    let ws = env.dir.join("ws");
    write_workspace(&ws);
    let (t1, t2) = (env.dir.join("t1"), env.dir.join("t2"));
    let t1s = t1.to_str().unwrap();
    let t2s = t2.to_str().unwrap();

    let cold = std::time::Instant::now();
    cargo(&env, &ws, true, &["build", "--target-dir", t1s]);
    eprintln!("cold cached build: {:?}", cold.elapsed());
    let first = outcomes(&env);
    assert!(first.get("hit").is_none_or(|h| h.is_empty()), "{first:?}");
    let expected_out = "{\"greeting\":\"hello\",\"numbers\":[3,4],\"sum\":7}\n";
    assert_eq!(run_app(&t1), expected_out);
    env.ok(&["--zero-stats"]);

    // A second, fresh target dir: every cacheable crate hits, those reading OUT_DIR files too.
    let warm = std::time::Instant::now();
    let out = cargo(&env, &ws, true, &["build", "--target-dir", t2s]);
    eprintln!("warm cached build: {:?}", warm.elapsed());
    let lines = outcome_lines(&env);
    let second: BTreeMap<String, BTreeSet<String>> = lines
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
        .collect();
    let missed = second.get("miss").cloned().unwrap_or_default();
    assert_eq!(missed, set(&[]), "outcomes: {second:?}");
    let hits = second.get("hit").cloned().unwrap_or_default();
    for c in TARGET_DIR_CRATES.iter().copied().chain([
        "regex",
        "regex_automata",
        "regex_syntax",
        "memchr",
        "aho_corasick",
        "util",
        "syn",
        "quote",
        "proc_macro2",
        "cc",
        "serde_derive",
        "build_script_build",
    ]) {
        assert!(hits.contains(c), "{c} did not hit: {second:?}");
    }
    let stats = env.stats();
    // cc-rs runs the C compiler through cachepot too when it is the RUSTC_WRAPPER: one more hit.
    assert_eq!(
        stats["hits"].as_u64().unwrap(),
        lines["hit"].len() as u64 + 1,
        "{lines:?}"
    );
    assert_eq!(stats["misses"].as_u64(), Some(0), "{lines:?}");
    assert_eq!(stats["other"]["rust.target_dir_in_inputs"].as_u64(), None, "{stats}");
    // Proc-macros, build scripts and bins are cached too (tests/rust_linked.rs).
    assert_eq!(stats["not_cacheable_reasons"].get("too_hard"), None, "{stats}");
    assert!(!s(&out.stderr).contains("cachepot: "), "{}", s(&out.stderr));
    assert_eq!(run_app(&t2), expected_out);
    // The .d files name this build's paths.
    let d = std::fs::read_dir(t2.join("debug/deps"))
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name().to_string_lossy().starts_with("regex_syntax-")
                && e.file_name().to_string_lossy().ends_with(".d")
        })
        .expect("regex_syntax .d");
    let d = std::fs::read_to_string(d.path()).unwrap();
    assert!(d.contains(&format!("{t2s}/debug/deps/libregex_syntax-")), "{d}");
    assert!(!d.contains(t1s), "{d}");
    // A hit gives the bytes the compile gave in the first dir.
    let cached_libs = libraries(&t2);
    let first_libs = libraries(&t1);
    assert_eq!(
        cached_libs.keys().collect::<Vec<_>>(),
        first_libs.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &cached_libs {
        assert!(first_libs[name] == *bytes, "{name} differs from the first build's");
    }
    cargo(&env, &ws, true, &["test", "-p", "core_lib", "--target-dir", t2s]);
    outcomes(&env);

    // With the implicit bases off, cachepot adds no remapping: the bytes of an uncached build.
    let t5 = env.dir.join("t5");
    let t5s = t5.to_str().unwrap();
    let some = ["build", "-p", "serde_core", "--target-dir", t5s];
    cargo(&env, &ws, false, &some);
    let plain_libs = libraries(&t5);
    std::fs::remove_dir_all(&t5).unwrap();
    env.set("CACHEPOT_RUST_IMPLICIT_BASEDIRS", "false");
    cargo(&env, &ws, true, &some);
    env.extra_env.pop();
    let off = outcomes(&env);
    assert_eq!(
        off["miss"].len(),
        2,
        "serde_core and its build script, other keys than with the bases: {off:?}"
    );
    let off_libs = libraries(&t5);
    assert_eq!(
        plain_libs.keys().collect::<Vec<_>>(),
        off_libs.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &off_libs {
        assert!(plain_libs[name] == *bytes, "{name} differs from an uncached build");
    }

    // One source changed: only it and its dependents miss (in a fresh dir, the rest still hits).
    std::fs::write(
        ws.join("util/src/lib.rs"),
        "pub fn greeting() -> &'static str {\n    concat!(env!(\"CACHEPOT_TEST_GREETING\"), \"!\")\n}\n",
    )
    .unwrap();
    let t3 = env.dir.join("t3");
    cargo(&env, &ws, true, &["build", "--target-dir", t3.to_str().unwrap()]);
    let third = outcomes(&env);
    // util changed: it, core_lib built on it and app linking them miss.
    let want = set(&["util", "core_lib", "app"]);
    assert_eq!(third.get("miss").cloned().unwrap_or_default(), want, "{third:?}");
    assert!(third["hit"].contains("regex"), "{third:?}");
    assert_eq!(run_app(&t3), expected_out.replace("hello", "hello!"));

    // Same target dir, same sources, a changed env! variable: util misses again.
    env.set("CACHEPOT_TEST_GREETING", "bonjour");
    let t4 = env.dir.join("t4");
    cargo(&env, &ws, true, &["build", "--target-dir", t4.to_str().unwrap()]);
    let fourth = outcomes(&env);
    assert!(fourth["miss"].contains("util"), "{fourth:?}");
    assert!(!fourth["hit"].contains("util"), "{fourth:?}");
    assert_eq!(run_app(&t4), expected_out.replace("hello", "bonjour!"));
}

/// A small library compiled by calling rustc directly through cachepot.
fn direct_rustc(env: &Env, rustc: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        rustc,
        "--crate-name",
        "small",
        "--crate-type",
        "lib",
        "--edition=2021",
        "--emit=dep-info,metadata,link",
        "--out-dir",
        "out",
        "src/lib.rs",
    ];
    args.extend_from_slice(extra);
    let out = env.cachepot(&args);
    assert!(out.status.success(), "rustc {args:?}: {}", s(&out.stderr));
    out
}

fn small_crate(name: &str) -> Env {
    let env = Env::new(name);
    env.dir.write(
        "src/lib.rs",
        "#[cfg(flag)]\npub fn flagged() {}\npub fn add(a: u32, b: u32) -> u32 { let unused = 1; a + b }\n",
    );
    std::fs::create_dir_all(env.dir.join("out")).unwrap();
    env
}

/// A crate with half a megabyte of outputs is stored in the background (background.rs): the call
/// exits first, the store keeps the bytes rustc wrote even when the build overwrites the rlib at
/// once, a call straight after waits for the store and hits, and `--show-stats` counts it all.
/// With CACHEPOT_BACKGROUND_STORE=false the miss is stored before the call exits.
#[test]
fn a_large_store_finishes_in_the_background_with_what_rustc_wrote() {
    let rustc = require_tool("rustc");
    let rustc = rustc.to_str().unwrap();
    let mut env = Env::new("rust-background");
    env.set("CACHEPOT_ERROR_LOG", env.dir.join("cachepot.log").to_str().unwrap());
    env.set("CACHEPOT_LOG", "rust=info");
    env.dir.write(
        "src/lib.rs",
        "pub static DATA: [u8; 600_000] = [7; 600_000];\npub fn first() -> u8 { DATA[0] }\n",
    );
    for d in ["out1", "out2", "out3"] {
        std::fs::create_dir_all(env.dir.join(d)).unwrap();
    }
    let compile = |out: &str| {
        let args = [
            rustc,
            "--crate-name",
            "big",
            "--crate-type",
            "lib",
            "--edition=2021",
            "--emit=dep-info,metadata,link",
            "--out-dir",
            out,
            "src/lib.rs",
        ];
        let o = env.cachepot(&args);
        assert!(o.status.success(), "rustc {args:?}: {}", s(&o.stderr));
    };
    compile("out1");
    let rlib = env.dir.join("out1/libbig.rlib");
    let written = std::fs::read(&rlib).unwrap();
    assert!(written.len() > 600_000, "{}", written.len());
    // A later build step rewrites the rlib in place while the store may still be running.
    std::fs::write(&rlib, vec![0u8; written.len()]).unwrap();
    compile("out2");
    assert_eq!(std::fs::read(env.dir.join("out2/libbig.rlib")).unwrap(), written);
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1));
    let log = std::fs::read_to_string(env.dir.join("cachepot.log")).unwrap_or_default();
    assert!(log.contains("in the background)"), "{log}");
    assert!(
        !log.contains("then 0.0 ms in the background"),
        "the first call stored in the background: {log}"
    );

    // Off: stored before the call exits, nothing left pending.
    env.dir.write(
        "src/lib.rs",
        "pub static DATA: [u8; 600_000] = [8; 600_000];\npub fn first() -> u8 { DATA[0] }\n",
    );
    let out = env
        .cmd(cachepot_bin())
        .env("CACHEPOT_BACKGROUND_STORE", "false")
        .args([rustc, "--crate-name", "big", "--crate-type", "lib", "--edition=2021"])
        .args(["--emit=dep-info,metadata,link", "--out-dir", "out3", "src/lib.rs"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let pending: Vec<_> = std::fs::read_dir(env.cache.join("pending"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| !n.as_encoded_bytes().starts_with(b"."))
                .collect()
        })
        .unwrap_or_default();
    assert!(pending.is_empty(), "no store in flight: {pending:?}");
    assert_eq!((env.stat("misses"), env.stat("hits")), (2, 1));
}

#[test]
fn cfg_and_opt_level_changes_miss_and_warnings_replay() {
    require_tool("rustc");
    let env = small_crate("rust-flags");
    let first = direct_rustc(&env, "rustc", &[]);
    let rlib = env.dir.read("out/libsmall.rlib");
    std::fs::remove_file(env.dir.join("out/libsmall.rlib")).unwrap();
    let second = direct_rustc(&env, "rustc", &[]);
    assert_eq!(env.stat("hits"), 1);
    assert_eq!(env.dir.read("out/libsmall.rlib"), rlib);
    assert!(s(&first.stderr).contains("unused variable"));
    assert_eq!(first.stderr, second.stderr);
    direct_rustc(&env, "rustc", &["--cfg", "flag"]);
    assert_eq!(env.stat("misses"), 2);
    direct_rustc(&env, "rustc", &["-C", "opt-level=2"]);
    assert_eq!(env.stat("misses"), 3);
    direct_rustc(&env, "rustc", &["-C", "opt-level=2"]);
    assert_eq!(env.stat("hits"), 2);
}

#[test]
fn changed_env_dependency_misses() {
    require_tool("rustc");
    let mut env = Env::new("rust-env");
    env.dir
        .write("src/lib.rs", "pub const V: &str = env!(\"CACHEPOT_T_VAR\");\n");
    std::fs::create_dir_all(env.dir.join("out")).unwrap();
    env.set("CACHEPOT_T_VAR", "one");
    direct_rustc(&env, "rustc", &[]);
    direct_rustc(&env, "rustc", &[]);
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1));
    env.set("CACHEPOT_T_VAR", "two");
    direct_rustc(&env, "rustc", &[]);
    assert_eq!((env.stat("misses"), env.stat("hits")), (2, 1));
    assert!(s(&env.dir.read("out/small.d")).contains("# env-dep:CACHEPOT_T_VAR=two"));
}

#[test]
fn different_toolchain_misses() {
    require_tool("rustc");
    // Debian's rustc (.ci/packages-rust.txt) is a second, different toolchain; called by full path
    // so it never shadows rustup's.
    let debian = Path::new("/usr/bin/rustc");
    assert!(
        debian.exists(),
        "/usr/bin/rustc (Debian's rustc package) is not installed; run .ci/run"
    );
    let env = small_crate("rust-toolchain");
    direct_rustc(&env, "rustc", &[]);
    let a = env.dir.read("out/libsmall.rlib");
    direct_rustc(&env, "/usr/bin/rustc", &[]);
    assert_eq!((env.stat("misses"), env.stat("hits")), (2, 0));
    assert_ne!(env.dir.read("out/libsmall.rlib"), a);
    direct_rustc(&env, "/usr/bin/rustc", &[]);
    assert_eq!((env.stat("misses"), env.stat("hits")), (2, 1));
}

#[test]
fn rustc_shim_caches_and_probes_pass_through() {
    let env = small_crate("rust-shim");
    let shims = env.dir.join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    std::os::unix::fs::symlink(cachepot_bin(), shims.join("rustc")).unwrap();
    let real = require_tool("rustc");
    let path = format!("{}:{}", shims.display(), real.parent().unwrap().display());
    for _ in 0..2 {
        let out = env
            .cmd(shims.join("rustc"))
            .env("PATH", &path)
            .args([
                "--crate-name",
                "small",
                "--crate-type",
                "lib",
                "--emit=link",
                "--out-dir",
                "out",
                "src/lib.rs",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
    }
    let v = env
        .cmd(shims.join("rustc"))
        .env("PATH", &path)
        .arg("-vV")
        .output()
        .unwrap();
    assert!(s(&v.stdout).contains("release:"));
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1));
    assert_eq!(env.not_cacheable("informational"), 1);
    assert!(env.dir.join("out/libsmall.rlib").exists());
}

#[test]
fn clippy_after_check_still_lints() {
    let env = Env::new("rust-clippy");
    let ws = env.dir.join("ws");
    let w = |rel: &str, text: &str| {
        common::write_under(&ws, rel, text);
    };
    w(
        "Cargo.toml",
        "[workspace]\nmembers = [\"a\", \"b\"]\nresolver = \"2\"\n",
    );
    w(
        "b/Cargo.toml",
        "[package]\nname = \"b\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    w("b/src/lib.rs", "pub fn one() -> u32 { 1 }\n");
    w(
        "a/Cargo.toml",
        "[package]\nname = \"a\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nb = { path = \"../b\" }\n",
    );
    w("a/src/lib.rs", "pub fn two() -> u32 {\n    return b::one() + 1;\n}\n");
    let t = env.dir.join("t");
    cargo(&env, &ws, true, &["check", "--target-dir", t.to_str().unwrap()]);
    let out = cargo(&env, &ws, true, &["clippy", "--target-dir", t.to_str().unwrap()]);
    assert!(
        s(&out.stderr).contains("unneeded `return` statement"),
        "{}",
        s(&out.stderr)
    );
    assert!(env.not_cacheable("clippy_driver") >= 1);
    // A fresh target dir after the check entries are stored: clippy still lints.
    let t2 = env.dir.join("t2");
    let out = cargo(&env, &ws, true, &["clippy", "--target-dir", t2.to_str().unwrap()]);
    assert!(
        s(&out.stderr).contains("unneeded `return` statement"),
        "{}",
        s(&out.stderr)
    );
}

#[test]
fn json_artifact_lines_name_this_calls_out_dir() {
    let env = small_crate("rust-artifacts");
    let json = ["--error-format=json", "--json=diagnostic-rendered-ansi,artifacts"];
    let run = |out: &str| {
        std::fs::create_dir_all(env.dir.join(out)).unwrap();
        let out_abs = env.dir.join(out);
        let mut args = vec![
            "rustc",
            "--crate-name",
            "small",
            "--crate-type",
            "lib",
            "--emit=dep-info,metadata,link",
            "--out-dir",
            out_abs.to_str().unwrap(),
            "src/lib.rs",
        ];
        args.extend_from_slice(&json);
        let o = env.cachepot(&args);
        assert!(o.status.success(), "{}", s(&o.stderr));
        (s(&o.stderr), out_abs)
    };
    let (first, d1) = run("one");
    let (second, d2) = run("two");
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1));
    let artifact = |dir: &Path| {
        format!(
            "{{\"$message_type\":\"artifact\",\"artifact\":\"{}/libsmall.rmeta\"",
            dir.display()
        )
    };
    assert!(first.contains(&artifact(&d1)), "{first}");
    assert!(second.contains(&artifact(&d2)), "{second}");
    assert!(!second.contains(d1.to_str().unwrap()), "{second}");
    assert!(second.contains("unused variable"), "{second}");
    let dep = s(&env.dir.read("two/small.d"));
    assert!(
        dep.starts_with(&format!("{}/small.d: src/lib.rs", d2.display())),
        "{dep}"
    );
    assert!(env.dir.join("two/libsmall.rlib").exists() && env.dir.join("two/libsmall.rmeta").exists());
}

#[test]
fn cargo_config_rustc_wrapper_incremental_and_install_shims() {
    let env = Env::new("rust-config");
    let ws = env.dir.join("ws");
    let w = |rel: &str, text: &str| {
        common::write_under(&ws, rel, text);
    };
    w(
        "Cargo.toml",
        "[package]\nname = \"c\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    w("src/lib.rs", "pub fn c() -> u32 { 3 }\n");
    w(
        ".cargo/config.toml",
        &format!("[build]\nrustc-wrapper = {:?}\n", cachepot_bin().to_str().unwrap()),
    );
    for t in ["t1", "t2"] {
        cargo(
            &env,
            &ws,
            false,
            &["build", "--target-dir", env.dir.join(t).to_str().unwrap()],
        );
    }
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1));
    // Incremental builds (cargo's default for workspace crates) pass through per crate, no error.
    let mut inc = Env::new("rust-incremental");
    inc.cache = env.cache.clone();
    inc.set("CARGO_INCREMENTAL", "1");
    cargo(
        &inc,
        &ws,
        false,
        &["build", "--target-dir", env.dir.join("t3").to_str().unwrap()],
    );
    assert_eq!(env.not_cacheable("too_hard"), 1);
    assert_eq!(env.not_cacheable_detail("incremental compile (-C incremental)"), 1);
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1));

    // --install-shims links rustc and clippy-driver where they are installed.
    let rustc = require_tool("rustc");
    let bin = rustc.parent().unwrap();
    let shims = env.dir.join("shims");
    let out = env
        .cmd(cachepot_bin())
        .env("PATH", bin)
        .args(["--install-shims", shims.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(shims.join("rustc").is_symlink());
    if bin.join("clippy-driver").exists() {
        assert!(shims.join("clippy-driver").is_symlink());
    }
}

/// The real toolchain's sysroot (not rustup's proxy).
fn sysroot() -> PathBuf {
    let out = Command::new(require_tool("rustc"))
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc --print sysroot");
    assert!(out.status.success());
    PathBuf::from(s(&out.stdout).trim())
}

/// A "machine": its own checkout of the workspace, CARGO_HOME, cache dir and toolchain, all in
/// one directory, sharing only `redis`.
struct Machine {
    env: Env,
    ws: PathBuf,
    cargo_home: PathBuf,
    toolchain: PathBuf,
}

impl Machine {
    fn new(name: &str, toolchain: Option<&Path>, redis_url: &str) -> Machine {
        let mut env = Env::new(name);
        let ws = env.dir.join("checkout/ws");
        write_workspace(&ws);
        let cargo_home = env.dir.join("cargo-home");
        std::fs::create_dir_all(&cargo_home).unwrap();
        env.set("CACHEPOT_REDIS", redis_url);
        env.set("CACHEPOT_BASEDIRS", ws.to_str().unwrap());
        let toolchain = match toolchain {
            Some(t) => t.to_path_buf(),
            None => sysroot(),
        };
        Machine {
            env,
            ws,
            cargo_home,
            toolchain,
        }
    }

    /// `cargo build` with this machine's toolchain (its own cargo and rustc first on PATH, no
    /// rustup in the way) and CARGO_HOME, through cachepot.
    fn cargo(&self, args: &[&str]) -> Output {
        let bin = self.toolchain.join("bin");
        let mut c = self.env.cmd(bin.join("cargo"));
        c.current_dir(&self.ws);
        for (k, _) in std::env::vars() {
            if k.starts_with("CARGO") || k.starts_with("RUSTC") || k.starts_with("RUSTFLAGS") || k.starts_with("RUSTUP")
            {
                c.env_remove(&k);
            }
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut p = bin.clone().into_os_string();
        p.push(":");
        p.push(path);
        c.env("PATH", p);
        c.env("CARGO_HOME", &self.cargo_home);
        c.env("CARGO_INCREMENTAL", "0");
        c.env("CACHEPOT_TEST_GREETING", "hello");
        c.env("RUSTC_WRAPPER", cachepot_bin());
        c.env("CACHEPOT_ERROR_LOG", self.env.dir.join("cachepot.log"));
        c.env("CACHEPOT_LOG", "rust=info,compile=debug");
        for (k, v) in &self.env.extra_env {
            c.env(k, v);
        }
        let out = c.args(args).output().expect("run cargo");
        assert!(
            out.status.success(),
            "cargo {args:?} failed:\nstdout: {}\nstderr: {}",
            s(&out.stdout),
            s(&out.stderr)
        );
        out
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_naming(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let data = std::fs::read(e.path()).unwrap();
                if data.windows(needle.len()).any(|w| w == needle) {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

/// Copy a toolchain's rustc, cargo and libraries to `dest`: the same bytes at another path, every
/// file with a new mtime (a fresh install on another machine).
fn copy_toolchain(from: &Path, dest: &Path) {
    std::fs::create_dir_all(dest.join("bin")).unwrap();
    for tool in ["rustc", "cargo"] {
        std::fs::copy(from.join("bin").join(tool), dest.join("bin").join(tool)).unwrap();
    }
    let st = Command::new("cp")
        .arg("-r")
        .arg(from.join("lib"))
        .arg(dest)
        .status()
        .expect("cp -r");
    assert!(st.success());
}

/// Machine A fills a shared Redis from a cargo workspace with registry crates (serde with derive
/// and a build script, regex, a C library built by cc); machine B has another checkout path,
/// another CARGO_HOME, a fresh copy of the toolchain at another path and an empty cache dir: every
/// crate cachepot caches is a hit there, the program runs right, dep-info names B's paths and no
/// file B's build wrote names A's directories.
#[test]
fn second_machine_gets_every_cacheable_crate_from_redis() {
    let server = remote_support::redis(&[]);
    let url = format!("redis://127.0.0.1:{}/0", server.port);
    let a = Machine::new("machine-a", None, &url);
    a.cargo(&["build"]);
    let a_stats = a.env.stats();
    let a_misses = a_stats["misses"].as_u64().unwrap();
    assert!(a_misses >= 15, "{a_stats}");
    assert_eq!(a_stats["hits"].as_u64(), Some(0), "{a_stats}");
    let expected_out = "{\"greeting\":\"hello\",\"numbers\":[3,4],\"sum\":7}\n";
    let run = |m: &Machine| {
        let out = Command::new(m.ws.join("target/debug/app")).output().expect("run app");
        assert!(out.status.success());
        s(&out.stdout)
    };
    assert_eq!(run(&a), expected_out);

    let b_dir = TestDir::new("machine-b-toolchain");
    let b_toolchain = b_dir.join("rust");
    copy_toolchain(&a.toolchain, &b_toolchain);
    let b = Machine::new("machine-b", Some(&b_toolchain), &url);
    b.cargo(&["build"]);
    let b_stats = b.env.stats();
    let log = std::fs::read_to_string(b.env.dir.join("cachepot.log")).unwrap_or_default();
    let missed: Vec<&str> = log.lines().filter(|l| l.contains("miss")).collect();
    assert_eq!(b_stats["misses"].as_u64(), Some(0), "B missed: {b_stats}\n{missed:#?}");
    assert_eq!(
        b_stats["hits"].as_u64(),
        Some(a_misses),
        "B hits every unit A stored: {b_stats}"
    );
    assert_eq!(b_stats["errors"].as_u64(), Some(0), "{b_stats}");
    assert_eq!(run(&b), expected_out);

    // Nothing B's build wrote names A's checkout, CARGO_HOME or cache.
    let a_root = a.env.dir.path.to_str().unwrap().as_bytes().to_vec();
    assert_eq!(files_naming(&b.ws.join("target"), &a_root), Vec::<PathBuf>::new());
    // Dep-info names B's paths: its sources and the registry sources under B's CARGO_HOME.
    let deps = b.ws.join("target/debug/deps");
    let d = std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .find(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("serde_core-") && n.ends_with(".d")
        })
        .expect("serde_core .d");
    let d = std::fs::read_to_string(d.path()).unwrap();
    assert!(d.contains(&format!("{}/libserde_core-", deps.display())), "{d}");
    assert!(d.contains(&format!("{}/registry/src/", b.cargo_home.display())), "{d}");
    assert!(
        d.contains("env-dep:OUT_DIR") || d.contains("/out/"),
        "serde_core reads its OUT_DIR: {d}"
    );

    // A rebuild on B after a source change misses only what changed (and its dependents).
    std::fs::write(
        b.ws.join("util/src/lib.rs"),
        "pub fn greeting() -> &'static str {\n    concat!(env!(\"CACHEPOT_TEST_GREETING\"), \"?\")\n}\n",
    )
    .unwrap();
    b.env.ok(&["--zero-stats"]);
    b.cargo(&["build"]);
    let again = b.env.stats();
    assert_eq!(again["misses"].as_u64(), Some(3), "util, core_lib and app: {again}");
    assert_eq!(run(&b), expected_out.replace("hello", "hello?"));
}
