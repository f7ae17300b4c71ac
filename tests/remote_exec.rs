//! Misses compiled remotely (`CACHEPOT_REMOTE_EXECUTION=on`) on a real BuildGrid with its
//! Execution and Bots services (scheduler on a private PostgreSQL), and test workers
//! (tests/data/reapi_worker.py) standing in for a worker fleet: a C project built with make -j8
//! (with -MD -MP) compiles on the workers with objects and dependency files byte-identical to local
//! compiles; compiler errors and
//! warnings read as locally; an engine stopped in the middle of a build leaves the build right.
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
