//! Misses compiled remotely (`CACHEPOT_REMOTE_EXECUTION=on`) on a real BuildGrid with its
//! Execution and Bots services (scheduler on a private PostgreSQL), and test workers
//! (tests/data/reapi_worker.py) standing in for a worker fleet: a C project built with make -j8
//! (with -MD -MP) compiles on the workers with objects and dependency files byte-identical to local
//! compiles; compiler errors and
//! warnings read as locally; an engine stopped in the middle of a build leaves the build right.
//! The same for a cargo workspace: its library crates compile on the workers (rust/remote.rs), byte
//! for byte as rustc compiles them here.
mod common;
mod reapi_support;
mod remote_support;
use common::*;
use reapi_support::*;
use remote_support::*;
use std::process::Command;

const FILES: usize = 12;

/// A C project of `FILES` sources (each includes a project header and libc headers) and a Makefile.
fn c_project(dir: &TestDir) -> Vec<String> {
    dir.write("inc/proj.h", "#define SCALE 7\nint helper(int);\n");
    let names: Vec<String> = (0..FILES)
        .map(|i| {
            let name = format!("u{i}.c");
            dir.write(
                &name,
                format!(
                    "#include <stdio.h>\n#include <string.h>\n#include \"proj.h\"\nint u{i}(const char *s) {{ printf(\"%zu\\n\", strlen(s)); return (int)strlen(s) * SCALE + {i}; }}\n"
                ),
            );
            name
        })
        .collect();
    let objects: Vec<String> = names.iter().map(|n| n.replace(".c", ".o")).collect();
    dir.write(
        "Makefile",
        format!(
            "CFLAGS = -O2 -Wall -Iinc -MD -MP\nall: {}\n%.o: %.c\n\t$(CC) $(CFLAGS) -c $< -o $@\n",
            objects.join(" ")
        ),
    );
    names
}

fn make(env: &Env) -> std::process::Output {
    let cc = format!("{} gcc", cachepot_bin().display());
    let out = env
        .cmd(require_tool("make"))
        .args(["-j8", &format!("CC={cc}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "make: {}{}", s(&out.stdout), s(&out.stderr));
    out
}

/// What gcc itself makes of each source, without cachepot: (object, dependency file), compiled in
/// a copy of the project (the dependency files name paths relative to the build dir).
fn local_objects(names: &[String]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let reference = TestDir::new("exec-reference");
    c_project(&reference);
    names
        .iter()
        .map(|n| {
            let obj = n.replace(".c", ".o");
            let out = Command::new(require_tool("gcc"))
                .args(["-O2", "-Wall", "-Iinc", "-MD", "-MP", "-c", n, "-o", &obj])
                .current_dir(&reference.path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", s(&out.stderr));
            (reference.read(&obj), reference.read(&n.replace(".c", ".d")))
        })
        .collect()
}

fn objects(env: &Env, names: &[String]) -> Vec<(Vec<u8>, Vec<u8>)> {
    names
        .iter()
        .map(|n| {
            (
                env.dir.read(&n.replace(".c", ".o")),
                env.dir.read(&n.replace(".c", ".d")),
            )
        })
        .collect()
}

fn exec_env(name: &str, server: &Server) -> Env {
    let mut env = env_with(name, server, "grpc");
    env.set("CACHEPOT_REMOTE_EXECUTION", "on");
    env.set("CACHEPOT_REMOTE_EXECUTION_TIMEOUT", "60s");
    env.set("CACHEPOT_ERROR_LOG", env.dir.join("cachepot.log").to_str().unwrap());
    env
}

#[test]
fn make_j8_compiles_on_the_workers_and_the_objects_are_the_local_ones() {
    let pg = postgres();
    let server = buildgrid(Options {
        execution: Some(&pg),
        ..Options::default()
    });
    let _workers = workers(&server, 4);
    let a = exec_env("exec-make", &server);
    let names = c_project(&a.dir);
    make(&a);
    assert_eq!(objects(&a, &names), local_objects(&names));
    let stats = a.stats();
    let log = s(&a.dir.read("cachepot.log"));
    assert_eq!(other(&a, "remote_execution.compiled"), FILES as u64, "{stats}\n{log}");
    assert_eq!(stats["errors"].as_u64(), Some(0), "{stats}");
    assert!(other(&a, "remote_execution.uploaded_bytes") > 0, "{stats}");
    // Stored in cachepot's cache as well: another machine hits without compiling at all.
    let b = exec_env("exec-make-b", &server);
    c_project(&b.dir);
    make(&b);
    assert_eq!(objects(&b, &names), objects(&a, &names));
    assert_eq!(b.stat("hits"), FILES as u64, "{}", b.stats());
    assert_eq!(other(&b, "remote_execution.compiled"), 0);
}

#[test]
fn compiler_warnings_and_errors_read_as_locally() {
    let pg = postgres();
    let server = buildgrid(Options {
        execution: Some(&pg),
        ..Options::default()
    });
    let _workers = workers(&server, 2);
    let env = exec_env("exec-diag", &server);
    env.dir.write("warn.c", "int w(void) { int unused; return 1; }\n");
    env.dir.write("bad.c", "int b(void) { return undeclared_name; }\n");
    let gcc = require_tool("gcc");
    for (file, ok) in [("warn.c", true), ("bad.c", false)] {
        let args = ["-Wall", "-O1", "-c", file, "-o", "out.o"];
        let local = Command::new(&gcc)
            .args(args)
            .current_dir(&env.dir.path)
            .output()
            .unwrap();
        let local_obj = local.status.success().then(|| env.dir.read("out.o"));
        let _ = std::fs::remove_file(env.dir.join("out.o"));
        let cached = env.cachepot(&[&["gcc"][..], &args[..]].concat());
        assert_eq!(cached.status.success(), ok, "{file}: {}", s(&cached.stderr));
        assert_eq!(cached.status.code(), local.status.code(), "{file}");
        assert_eq!(s(&cached.stderr), s(&local.stderr), "{file}");
        assert_eq!(s(&cached.stdout), s(&local.stdout), "{file}");
        if let Some(obj) = local_obj {
            assert_eq!(env.dir.read("out.o"), obj, "{file}");
        }
    }
    // With debug info the object would record the worker's directory: compiled locally, counted.
    env.dir.write("dbg.c", "int d(void) { return 4; }\n");
    let args = ["-g", "-O1", "-c", "dbg.c", "-o", "dbg.o"];
    let local = Command::new(&gcc)
        .args(args)
        .current_dir(&env.dir.path)
        .output()
        .unwrap();
    assert!(local.status.success());
    let local_obj = env.dir.read("dbg.o");
    let _ = std::fs::remove_file(env.dir.join("dbg.o"));
    env.ok(&[&["gcc"][..], &args[..]].concat());
    assert_eq!(env.dir.read("dbg.o"), local_obj);
    assert_eq!(other(&env, "remote_execution.not_eligible"), 1, "{}", env.stats());

    // Both ran remotely; the warning and the error were then compiled locally, so the compiler
    // shows its own diagnostics, quoting the source lines the worker does not have.
    assert_eq!(other(&env, "remote_execution.diagnostics_local"), 1, "{}", env.stats());
    assert_eq!(other(&env, "remote_execution.compile_failed"), 1, "{}", env.stats());
    assert_eq!(other(&env, "remote_execution.compiled"), 0, "{}", env.stats());
    assert_eq!(env.stats()["errors"].as_u64(), Some(0), "{}", env.stats());
}

#[test]
fn an_engine_stopped_in_the_middle_of_a_build_leaves_the_build_right() {
    let pg = postgres();
    let mut server = buildgrid(Options {
        execution: Some(&pg),
        ..Options::default()
    });
    let mut workers = workers(&server, 2);
    let env = exec_env("exec-stop", &server);
    let names = c_project(&env.dir);
    let half = FILES / 2;
    let cc = format!("{} gcc", cachepot_bin().display());
    let first: Vec<String> = names[..half].iter().map(|n| n.replace(".c", ".o")).collect();
    let out = env
        .cmd(require_tool("make"))
        .args(["-j8", &format!("CC={cc}")])
        .args(&first)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(other(&env, "remote_execution.compiled"), half as u64, "{}", env.stats());
    server.kill();
    workers.kill();
    make(&env);
    assert_eq!(objects(&env, &names), local_objects(&names));
    let stats = env.stats();
    assert_eq!(other(&env, "remote_execution.compiled"), half as u64, "{stats}");
    // The first compile after the stop found the engine gone (counted once, then the back-off
    // keeps the others from trying).
    assert!(other(&env, "remote_execution.local_fallback") >= 1, "{stats}");
    assert!(
        stats["error_kinds"]["remote_unreachable"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
}

#[test]
fn clang_compiles_remotely_too_with_the_local_object() {
    let pg = postgres();
    let server = buildgrid(Options {
        execution: Some(&pg),
        ..Options::default()
    });
    let _workers = workers(&server, 2);
    let env = exec_env("exec-clang", &server);
    let names = c_project(&env.dir);
    let clang = require_tool("clang");
    for n in &names[..3] {
        let obj = n.replace(".c", ".o");
        let args = ["-O2", "-Iinc", "-MD", "-c", n.as_str(), "-o", obj.as_str()];
        env.ok(&[&["clang"][..], &args[..]].concat());
        let ours = (env.dir.read(&obj), env.dir.read(&n.replace(".c", ".d")));
        let local = Command::new(&clang)
            .args(args)
            .current_dir(&env.dir.path)
            .output()
            .unwrap();
        assert!(local.status.success(), "{}", s(&local.stderr));
        assert_eq!(ours, (env.dir.read(&obj), env.dir.read(&n.replace(".c", ".d"))), "{n}");
    }
    assert_eq!(other(&env, "remote_execution.compiled"), 3, "{}", env.stats());
    assert_eq!(env.stats()["errors"].as_u64(), Some(0), "{}", env.stats());
}

/// A cargo workspace of local crates (no registry): `leaf`, `mid` (on leaf, with a generic function
/// and a macro), `top` (on mid, using leaf's type through it: rustc finds leaf in the dependency
/// dir) and the program `app` printing `top::answer()`.
fn rust_workspace(ws: &std::path::Path) {
    let w = |rel: &str, text: &str| {
        common::write_under(ws, rel, text);
    };
    w(
        "Cargo.toml",
        "[workspace]\nmembers = [\"leaf\", \"mid\", \"top\", \"app\"]\nresolver = \"2\"\n",
    );
    let package = |name: &str, deps: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}")
    };
    w("leaf/Cargo.toml", &package("leaf", ""));
    w(
        "leaf/src/lib.rs",
        "pub struct Count(pub u64);\npub fn base() -> Count {\n    Count(6)\n}\n",
    );
    w("mid/Cargo.toml", &package("mid", "leaf = { path = \"../leaf\" }\n"));
    w(
        "mid/src/lib.rs",
        "mod more;\n#[macro_export]\nmacro_rules! twice {\n    ($e:expr) => {\n        $e * 2\n    };\n}\n\
         pub fn scale<T: Into<u64>>(t: T) -> leaf::Count {\n    leaf::Count(leaf::base().0 * t.into() + more::EXTRA)\n}\n",
    );
    w("mid/src/more.rs", "pub const EXTRA: u64 = 0;\n");
    w(
        "top/Cargo.toml",
        &package("top", "mid = { path = \"../mid\" }\nleaf = { path = \"../leaf\" }\n"),
    );
    w(
        "top/src/lib.rs",
        "pub fn answer() -> u64 {\n    let c: leaf::Count = mid::scale(7u32);\n    mid::twice!(c.0) / 2\n}\n",
    );
    w("app/Cargo.toml", &package("app", "top = { path = \"../top\" }\n"));
    w(
        "app/src/main.rs",
        "fn main() {\n    println!(\"the answer is {}\", top::answer());\n}\n",
    );
}

/// `cargo build` in `ws` (the outer cargo's variables removed), through cachepot when `cached`.
fn cargo_build(env: &Env, ws: &std::path::Path, cached: bool, args: &[&str]) -> std::process::Output {
    let mut c = env.cmd(require_tool("cargo"));
    c.current_dir(ws);
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k.starts_with("RUSTC") || k.starts_with("RUSTFLAGS") {
            c.env_remove(&k);
        }
    }
    c.env("CARGO_INCREMENTAL", "0");
    // The log (CACHEPOT_ERROR_LOG) says why a crate compiled where it did, for failures' messages.
    c.env("CACHEPOT_LOG", "rust=debug");
    if cached {
        c.env("RUSTC_WRAPPER", cachepot_bin());
    }
    c.arg("build").args(args).output().expect("run cargo")
}

/// Every `.rlib`, `.rmeta` and dep-info `.d` of the workspace's crates, by file name.
fn rust_libraries(ws: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(ws.join("target/debug/deps"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.ends_with(".rlib") || name.ends_with(".rmeta") || name.ends_with(".d"))
                .then(|| (name, std::fs::read(e.path()).unwrap()))
        })
        .collect()
}

fn run_app(ws: &std::path::Path) -> String {
    let out = Command::new(ws.join("target/debug/app")).output().expect("run app");
    assert!(out.status.success());
    s(&out.stdout)
}

/// The workspace's libraries as cargo builds them with plain rustc given the remappings cachepot
/// gives it with remote execution on (`/=/`, then `$CARGO_HOME` and the profile dir by name: see
/// rust/bases.rs), through a wrapper script (cargo keys RUSTFLAGS into crate hashes, not the
/// wrapper); the target dir is removed again.
fn reference_libraries(env: &Env, ws: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let cargo_home =
        std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap()));
    let profile = ws.join("target/debug");
    let mut remaps = [
        ("/".to_string(), "/".to_string()),
        (cargo_home, "$CARGO_HOME".to_string()),
        (profile.to_str().unwrap().to_string(), "target/debug".to_string()),
    ];
    // rustc applies the last matching remapping: outermost first, as cachepot orders them.
    remaps.sort_by_key(|(from, _)| from.len());
    let args: Vec<String> = remaps
        .iter()
        .map(|(from, to)| format!("'--remap-path-prefix={from}={to}'"))
        .collect();
    let wrapper = env.dir.write(
        "remap-rustc.sh",
        format!("#!/bin/sh\nr=$1\nshift\nexec \"$r\" {} \"$@\"\n", args.join(" ")),
    );
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = env.cmd(require_tool("cargo"));
    c.current_dir(ws);
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k.starts_with("RUSTC") || k.starts_with("RUSTFLAGS") {
            c.env_remove(&k);
        }
    }
    let out = c
        .env("CARGO_INCREMENTAL", "0")
        .env("RUSTC_WRAPPER", &wrapper)
        .arg("build")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let libs = rust_libraries(ws);
    std::fs::remove_dir_all(ws.join("target")).unwrap();
    libs
}

fn assert_same_libraries(
    ours: &std::collections::BTreeMap<String, Vec<u8>>,
    reference: &std::collections::BTreeMap<String, Vec<u8>>,
) {
    assert_eq!(ours.keys().collect::<Vec<_>>(), reference.keys().collect::<Vec<_>>());
    let differ: Vec<&String> = ours.keys().filter(|k| ours[*k] != reference[*k]).collect();
    assert!(differ.is_empty(), "differ from rustc's own: {differ:?}");
}

/// cargo's messages less the lines that name the run (`Compiling`, `Finished`): rustc's own.
fn rustc_messages(stderr: &[u8]) -> String {
    s(stderr)
        .lines()
        .filter(|l| !l.trim_start().starts_with("Compiling") && !l.trim_start().starts_with("Finished"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_cargo_workspace_compiles_its_libraries_on_the_workers() {
    let pg = postgres();
    let server = buildgrid(Options {
        execution: Some(&pg),
        ..Options::default()
    });
    let _workers = workers(&server, 2);
    let env = exec_env("exec-cargo", &server);
    let ws = env.dir.join("ws");
    rust_workspace(&ws);
    let out = cargo_build(&env, &ws, true, &[]);
    let log = s(&std::fs::read(env.dir.join("cachepot.log")).unwrap_or_default());
    assert!(out.status.success(), "{}\n{log}", s(&out.stderr));
    let stats = env.stats();
    // The three libraries compiled on the workers; the program links, which stays here.
    assert_eq!(other(&env, "remote_execution.compiled"), 3, "{stats}\n{log}");
    assert_eq!(other(&env, "remote_execution.not_eligible"), 1, "{stats}");
    assert_eq!(stats["errors"].as_u64(), Some(0), "{stats}");
    assert!(other(&env, "remote_execution.uploaded_bytes") > 0, "{stats}");
    assert_eq!(run_app(&ws), "the answer is 42\n");
    let remote = rust_libraries(&ws);
    assert_eq!(remote.len(), 10, "{:?}", remote.keys());

    // The same crates compiled here by rustc with the one remapping remote execution adds (every
    // path to itself: rust/remote.rs), at the same place: the same bytes.
    std::fs::remove_dir_all(ws.join("target")).unwrap();
    assert_same_libraries(&remote, &reference_libraries(&env, &ws));

    // Stored as cachepot entries too: a new target dir hits without the engine.
    let again = cargo_build(&env, &ws, true, &[]);
    assert!(again.status.success(), "{}", s(&again.stderr));
    assert_eq!(other(&env, "remote_execution.compiled"), 3, "{}", env.stats());
    assert!(env.stat("hits") >= 3, "{}", env.stats());
    assert_eq!(run_app(&ws), "the answer is 42\n");

    // A type error (found by the compile, not by dep-info's expansion) fails on the worker, then
    // here: rustc's messages read exactly as plain cargo's.
    std::fs::write(
        ws.join("top/src/lib.rs"),
        "pub fn answer() -> u64 {\n    let c: leaf::Count = mid::scale(7u32);\n    c\n}\n",
    )
    .unwrap();
    let failed = cargo_build(&env, &ws, true, &[]);
    let plain = cargo_build(&env, &ws, false, &[]);
    assert!(!failed.status.success());
    assert_eq!(failed.status.code(), plain.status.code());
    assert!(
        rustc_messages(&failed.stderr).contains("error[E0308]"),
        "{}",
        s(&failed.stderr)
    );
    assert_eq!(rustc_messages(&failed.stderr), rustc_messages(&plain.stderr));
    assert_eq!(other(&env, "remote_execution.compile_failed"), 1, "{}", env.stats());
    assert_eq!(env.stats()["errors"].as_u64(), Some(0), "{}", env.stats());
}

#[test]
fn an_engine_stopped_in_the_middle_of_a_cargo_build_leaves_the_build_right() {
    let pg = postgres();
    let mut server = buildgrid(Options {
        execution: Some(&pg),
        ..Options::default()
    });
    let mut workers = workers(&server, 2);
    let env = exec_env("exec-cargo-stop", &server);
    let ws = env.dir.join("ws");
    rust_workspace(&ws);
    let first = cargo_build(&env, &ws, true, &["-p", "mid"]);
    assert!(first.status.success(), "{}", s(&first.stderr));
    assert_eq!(other(&env, "remote_execution.compiled"), 2, "{}", env.stats());
    server.kill();
    workers.kill();
    let rest = cargo_build(&env, &ws, true, &[]);
    assert!(rest.status.success(), "{}", s(&rest.stderr));
    assert_eq!(run_app(&ws), "the answer is 42\n");
    // Compiled remotely or here, the same bytes.
    let ours = rust_libraries(&ws);
    std::fs::remove_dir_all(ws.join("target")).unwrap();
    assert_same_libraries(&ours, &reference_libraries(&env, &ws));
    let stats = env.stats();
    assert_eq!(other(&env, "remote_execution.compiled"), 2, "{stats}");
    assert_eq!(other(&env, "remote_execution.local_fallback"), 1, "{stats}");
    assert!(
        stats["error_kinds"]["remote_unreachable"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
}

/// Read-only (`CACHEPOT_REMOTE_READ_ONLY`) with remote execution: cachepot writes no entry to the
/// remote, but the action's inputs still go to the CAS (executing needs them), and the engine keeps
/// the result of what it ran itself in its own Action Cache: another machine's remote compile of
/// the same source is answered from there.
#[test]
fn read_only_stores_no_entry_but_still_executes() {
    let pg = postgres();
    let server = buildgrid(Options {
        execution: Some(&pg),
        ..Options::default()
    });
    let _workers = workers(&server, 2);
    let mut ro = exec_env("exec-ro", &server);
    ro.set("CACHEPOT_REMOTE_READ_ONLY", "on");
    let names = c_project(&ro.dir);
    make(&ro);
    assert_eq!(objects(&ro, &names), local_objects(&names));
    assert_eq!(other(&ro, "remote_execution.compiled"), FILES as u64, "{}", ro.stats());
    assert!(other(&ro, "remote_execution.uploaded_bytes") > 0, "{}", ro.stats());
    assert_eq!(other(&ro, "remote.write"), 0, "{}", ro.stats());
    assert!(
        other(&ro, "remote.write-skipped-read-only") >= FILES as u64,
        "{}",
        ro.stats()
    );

    let rw = exec_env("exec-ro-b", &server);
    c_project(&rw.dir);
    make(&rw);
    assert_eq!(objects(&rw, &names), objects(&ro, &names));
    assert_eq!(rw.stat("hits"), 0, "nothing of cachepot's was stored: {}", rw.stats());
    assert_eq!(
        other(&rw, "remote_execution.engine_cache_hit"),
        FILES as u64,
        "{}",
        rw.stats()
    );
}

/// gcc's driver, its cc1 directory and `as`, as this machine has them.
fn gcc_files() -> Vec<std::path::PathBuf> {
    let gcc = std::fs::canonicalize(require_tool("gcc")).unwrap();
    let ask = |prog: &str| {
        let out = Command::new(&gcc)
            .arg(format!("-print-prog-name={prog}"))
            .output()
            .unwrap();
        let name = s(&out.stdout).trim().to_string();
        let path = if name.contains('/') {
            name.into()
        } else {
            require_tool(&name)
        };
        std::fs::canonicalize(path).unwrap()
    };
    let cc1_dir = ask("cc1").parent().unwrap().to_path_buf();
    let assembler = ask("as");
    vec![cc1_dir, gcc.clone(), assembler]
}

/// `CACHEPOT_REMOTE_TOOLCHAIN=upload`: gcc's programs go into the CAS once and run from the input
/// root, on workers that cannot see the machine's gcc (its driver, cc1 directory and `as` hidden).
#[test]
fn an_uploaded_gcc_runs_on_workers_without_a_compiler() {
    let pg = postgres();
    let server = buildgrid(Options {
        execution: Some(&pg),
        ..Options::default()
    });
    let hidden = gcc_files();
    let _workers = workers_without(&server, 2, &hidden);
    let gcc = require_tool("gcc");
    let compile = |env: &Env, n: &str| {
        let obj = n.replace(".c", ".o");
        let args = ["-O2", "-Wall", "-Iinc", "-c", n, "-o", obj.as_str()];
        env.ok(&[&["gcc"][..], &args[..]].concat());
        let ours = env.dir.read(&obj);
        let local = Command::new(&gcc)
            .args(args)
            .current_dir(&env.dir.path)
            .output()
            .unwrap();
        assert!(local.status.success(), "{}", s(&local.stderr));
        assert_eq!(ours, env.dir.read(&obj), "{n}");
    };

    // These workers have no compiler of their own: without the upload, every compile comes back.
    let bare = exec_env("exec-bare", &server);
    let names = c_project(&bare.dir);
    compile(&bare, &names[0]);
    assert_eq!(other(&bare, "remote_execution.compiled"), 0, "{}", bare.stats());
    assert_eq!(other(&bare, "remote_execution.compile_failed"), 1, "{}", bare.stats());

    let mut up = exec_env("exec-upload", &server);
    up.set("CACHEPOT_REMOTE_TOOLCHAIN", "upload");
    c_project(&up.dir);
    compile(&up, &names[1]);
    let log = s(&std::fs::read(up.dir.join("cachepot.log")).unwrap_or_default());
    assert_eq!(other(&up, "remote_execution.compiled"), 1, "{}\n{log}", up.stats());
    let cc1 = std::fs::metadata(hidden[0].join("cc1")).unwrap().len();
    let first = other(&up, "remote_execution.uploaded_bytes");
    assert!(
        first > cc1,
        "the toolchain ({cc1} bytes of cc1) went with the first action: {first}"
    );
    // Each file of it travels once: the next action sends its own source and little else.
    compile(&up, &names[2]);
    assert_eq!(other(&up, "remote_execution.compiled"), 2, "{}", up.stats());
    let second = other(&up, "remote_execution.uploaded_bytes") - first;
    assert!(second < 200_000, "{second} bytes for the second action");
    assert_eq!(up.stats()["errors"].as_u64(), Some(0), "{}", up.stats());
}

/// crates.io crates (serde, serde_json, regex: what tests/rust_cargo.rs downloads) and a library of
/// the workspace deriving serde's traits: the library crates compile on the workers (those that
/// include! their build script's OUT_DIR files too), the derive's proc macro running there;
/// everything that links compiles here; every library is as rustc makes it here.
#[test]
fn registry_crates_and_proc_macros_compile_on_the_workers() {
    let pg = postgres();
    let server = buildgrid(Options {
        execution: Some(&pg),
        ..Options::default()
    });
    let _workers = workers(&server, 2);
    let env = exec_env("exec-registry", &server);
    let ws = env.dir.join("ws");
    let w = |rel: &str, text: &str| {
        common::write_under(&ws, rel, text);
    };
    w(
        "Cargo.toml",
        "[workspace]\nmembers = [\"model\", \"generated\", \"app\"]\nresolver = \"2\"\n",
    );
    // A build script writing code to OUT_DIR, which the library include!s.
    w(
        "generated/Cargo.toml",
        "[package]\nname = \"generated\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    w(
        "generated/build.rs",
        "fn main() {\n    let out = std::env::var(\"OUT_DIR\").unwrap();\n    \
         std::fs::write(format!(\"{out}/gen.rs\"), \"pub const FACTOR: u32 = 6;\\n\").unwrap();\n}\n",
    );
    w(
        "generated/src/lib.rs",
        "include!(concat!(env!(\"OUT_DIR\"), \"/gen.rs\"));\npub fn times(n: u32) -> u32 {\n    n * FACTOR\n}\n",
    );
    // The versions tests/rust_cargo.rs pins (its lock names more crates; cargo keeps these).
    w("Cargo.lock", include_str!("data/rust-workspace.lock"));
    w(
        "model/Cargo.toml",
        "[package]\nname = \"model\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         serde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\nregex = \"1\"\n",
    );
    w(
        "model/src/lib.rs",
        "#[derive(serde::Serialize)]\npub struct Found {\n    pub numbers: Vec<u32>,\n}\n\
         pub fn find(text: &str) -> String {\n    let re = regex::Regex::new(r\"\\d+\").unwrap();\n    \
         let numbers = re.find_iter(text).map(|m| m.as_str().parse().unwrap()).collect();\n    \
         serde_json::to_string(&Found { numbers }).unwrap()\n}\n",
    );
    w(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         model = { path = \"../model\" }\ngenerated = { path = \"../generated\" }\n",
    );
    w(
        "app/src/main.rs",
        "fn main() {\n    println!(\"{} {}\", model::find(\"6 times 7\"), generated::times(7));\n}\n",
    );
    let out = cargo_build(&env, &ws, true, &[]);
    let log = s(&std::fs::read(env.dir.join("cachepot.log")).unwrap_or_default());
    assert!(out.status.success(), "{}\n{log}", s(&out.stderr));
    let app = Command::new(ws.join("target/debug/app")).output().unwrap();
    assert_eq!(s(&app.stdout), "{\"numbers\":[6,7]} 42\n");
    let stats = env.stats();
    assert_eq!(stats["errors"].as_u64(), Some(0), "{stats}\n{log}");
    // regex and its dependencies, serde_json, syn, serde and serde_core (which include! a file their
    // build scripts write to OUT_DIR) on the workers; the build scripts, serde_derive and app (they
    // link) here.
    let compiled = other(&env, "remote_execution.compiled");
    assert!(compiled >= 10, "{stats}\n{log}");
    assert!(other(&env, "remote_execution.not_eligible") >= 4, "{stats}\n{log}");
    // model and generated alone again: both compile on a worker, serde_derive's macro expanding
    // there, and the input root holding the OUT_DIR file that generated include!s.
    w(
        "model/src/lib.rs",
        &s(&std::fs::read(ws.join("model/src/lib.rs")).unwrap()).replace(r"\d+", r"[0-9]+"),
    );
    w(
        "generated/src/lib.rs",
        &s(&std::fs::read(ws.join("generated/src/lib.rs")).unwrap()).replace("n * FACTOR", "FACTOR * n"),
    );
    let again = cargo_build(&env, &ws, true, &[]);
    assert!(again.status.success(), "{}", s(&again.stderr));
    assert_eq!(
        other(&env, "remote_execution.compiled"),
        compiled + 2,
        "{}",
        env.stats()
    );
    let app = Command::new(ws.join("target/debug/app")).output().unwrap();
    assert_eq!(s(&app.stdout), "{\"numbers\":[6,7]} 42\n");
    let ours = rust_libraries(&ws);
    std::fs::remove_dir_all(ws.join("target")).unwrap();
    assert_same_libraries(&ours, &reference_libraries(&env, &ws));
}
