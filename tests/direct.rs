//! Direct mode: hits without running the preprocessor or the compiler, and the cases where that
//! would be wrong (changed, racing, shadowing or time-dependent inputs) miss instead.
mod common;
use common::*;
use std::path::{Path, PathBuf};

/// A directory holding a `gcc` wrapper that logs each run, then execs the real gcc (optionally
/// running a command after it), used as the "real compiler" through CACHEPOT_PATH.
fn logging_gcc(env: &Env, after: &str) -> (PathBuf, PathBuf) {
    let dir = env.dir.join("wrap");
    std::fs::create_dir_all(&dir).unwrap();
    let log = env.dir.join("compiler.log");
    let gcc = require_tool("gcc");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {}\n{} \"$@\"\nrc=$?\n{after}\nexit $rc\n",
        log.display(),
        gcc.display()
    );
    let path = dir.join("gcc");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (dir, log)
}

fn log_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map(|t| t.lines().count()).unwrap_or(0)
}

fn plain_gcc(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("gcc")
        .current_dir(dir)
        .args(args)
        .args(["-o", "plain.o"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    std::fs::read(dir.join("plain.o")).unwrap()
}

#[test]
fn direct_hit_runs_no_compiler_process() {
    let mut env = Env::new("nocc");
    let (wrap, log) = logging_gcc(&env, "");
    env.set(
        "CACHEPOT_PATH",
        format!("{}:{}", wrap.display(), std::env::var("PATH").unwrap()),
    );
    env.dir.write("inc/h.h", "#define V 3\n");
    env.dir.write(
        "a.c",
        "#include <stdio.h>\n#include \"h.h\"\nint f(void) { return V; }\n",
    );
    let args = ["gcc", "-c", "a.c", "-Iinc", "-O2", "-o", "a.o"];
    env.ok(&args);
    let runs = log_lines(&log);
    assert!(runs >= 1);
    let obj = env.dir.read("a.o");
    std::fs::remove_file(env.dir.join("a.o")).unwrap();
    env.ok(&args);
    assert_eq!(log_lines(&log), runs, "a direct hit started the compiler");
    assert_eq!(env.dir.read("a.o"), obj);
    assert_eq!(env.stat("hits_direct"), 1);
}

#[test]
fn changed_header_invalidates_the_manifest() {
    let env = Env::new("hdr");
    env.dir.write("inc/h.h", "#define V 3\n");
    env.dir.write("a.c", "#include \"h.h\"\nint f(void) { return V; }\n");
    let args = ["gcc", "-c", "a.c", "-Iinc", "-o", "a.o"];
    env.ok(&args);
    env.ok(&args);
    assert_eq!(env.stat("hits_direct"), 1);
    env.dir.write("inc/h.h", "#define V 4\n");
    env.ok(&args);
    assert_eq!(env.stat("hits_direct"), 1);
    assert_eq!(env.dir.read("a.o"), plain_gcc(&env.dir.path, &["-c", "a.c", "-Iinc"]));
}

#[test]
fn header_changed_during_the_compile_is_not_trusted() {
    let mut env = Env::new("race");
    let h = Path::new("inc/h.h");
    // After compiling, the "build" rewrites the header, as an editor or generator might mid-compile.
    let (wrap, _log) = logging_gcc(&Env::new("unused"), "");
    drop(wrap);
    let (wrap, _log) = logging_gcc(&env, &format!("echo '#define V 5' > {}", env.dir.join(h).display()));
    env.set(
        "CACHEPOT_PATH",
        format!("{}:{}", wrap.display(), std::env::var("PATH").unwrap()),
    );
    env.dir.write("inc/h.h", "#define V 4\n");
    env.dir.write("a.c", "#include \"h.h\"\nint f(void) { return V; }\n");
    let args = ["gcc", "-c", "a.c", "-Iinc", "-o", "a.o"];
    env.ok(&args);
    // The header now says 5; the stored object (if any) was built from 4. The next call must not
    // return it for the header's new content.
    env.extra_env.clear();
    env.ok(&args);
    assert_eq!(env.dir.read("a.o"), plain_gcc(&env.dir.path, &["-c", "a.c", "-Iinc"]));
    assert_eq!(env.stat("hits"), 0, "{}", env.stats());
}

#[test]
fn time_macros_never_freeze() {
    let env = Env::new("time");
    env.dir.write("t.c", "const char *t = __TIME__;\n");
    env.dir.write("inc/d.h", "#define STAMP __DATE__ \" \" __TIME__\n");
    env.dir.write("u.c", "#include \"d.h\"\nconst char *u = STAMP;\n");
    for src in ["t.c", "u.c"] {
        env.ok(&["gcc", "-c", src, "-Iinc", "-o", "x.o"]);
        let first = env.dir.read("x.o");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        env.ok(&["gcc", "-c", src, "-Iinc", "-o", "x.o"]);
        assert_ne!(env.dir.read("x.o"), first, "{src}: the time was frozen by a cache hit");
    }
    assert_eq!(env.stat("hits_direct"), 0);
}

#[test]
fn new_header_in_an_earlier_include_dir_misses() {
    let env = Env::new("shadow");
    env.dir.write("late/h.h", "#define V 1\n");
    std::fs::create_dir_all(env.dir.join("early")).unwrap();
    env.dir.write(
        "a.c",
        "#include \"h.h\"\n#include <stddef.h>\nint f(void) { return V + (int)sizeof(size_t); }\n",
    );
    let args = ["gcc", "-c", "a.c", "-Iearly", "-Ilate", "-o", "a.o"];
    env.ok(&args);
    env.ok(&args);
    assert_eq!(env.stat("hits_direct"), 1);
    // A header created in a directory that is searched first (the directory already existed).
    env.dir.write("early/h.h", "#define V 2\n");
    env.ok(&args);
    assert_eq!(
        env.dir.read("a.o"),
        plain_gcc(&env.dir.path, &["-c", "a.c", "-Iearly", "-Ilate"])
    );
    assert_eq!(
        env.stat("hits_direct"),
        1,
        "stale hit after a shadowing header appeared"
    );
    // And one that shadows a system header.
    env.ok(&args);
    assert_eq!(env.stat("hits_direct"), 2);
    env.dir.write("early/stddef.h", "typedef char size_t;\n");
    env.ok(&args);
    assert_eq!(
        env.dir.read("a.o"),
        plain_gcc(&env.dir.path, &["-c", "a.c", "-Iearly", "-Ilate"])
    );
    assert_eq!(
        env.stat("hits_direct"),
        2,
        "stale hit after a header shadowed a system header"
    );
}

/// The CI case: a warm cache and a build dir created afresh (its generated-header and include
/// directories are new). Hits must not re-probe every header in every directory, but a header that
/// appears later in an earlier -I directory, directly or in a new `sys/` subdirectory, must miss —
/// whether the directory is old enough for its fingerprint to be trusted or was made just now.
#[test]
fn fresh_build_dirs_hit_and_a_later_shadowing_header_misses() {
    let mut env = Env::new("fresh-build-dir");
    let root = env.dir.join("ws");
    let w = |rel: &str, text: &str| {
        common::write_under(&root, rel, text);
    };
    w(
        "src/a.c",
        "#include \"gen.h\"\n#include <sys/demo.h>\n#include <plain.h>\n#include <stddef.h>\nint f(void) { return GEN + DEMO + PLAIN + (int)sizeof(size_t); }\n",
    );
    w("late/sys/demo.h", "#define DEMO 1\n");
    w("late/plain.h", "#define PLAIN 2\n");
    let make_build_dir = |name: &str| {
        w(&format!("{name}/gen/gen.h"), "#define GEN 4\n");
        std::fs::create_dir_all(root.join(name).join("early")).unwrap();
    };
    for b in ["build-one", "build-two", "build-three"] {
        make_build_dir(b);
    }
    // Old enough (manifest.rs: STAT_TRUST_AGE) that the directories' fingerprints are trusted.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    env.set("CACHEPOT_BASEDIRS", root.to_str().unwrap());
    let args = |b: &str| -> Vec<String> {
        let bd = root.join(b);
        vec![
            "gcc".into(),
            "-c".into(),
            root.join("src/a.c").display().to_string(),
            format!("-I{}", bd.join("gen").display()),
            format!("-I{}", bd.join("early").display()),
            format!("-I{}", root.join("late").display()),
            "-o".into(),
            "a.o".into(),
        ]
    };
    let compile = |b: &str| -> Vec<u8> {
        let a = args(b);
        let out = env
            .cmd(cachepot_bin())
            .current_dir(root.join(b))
            .args(&a)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
        let plain = std::process::Command::new("gcc")
            .current_dir(root.join(b))
            .args(&a[1..a.len() - 1])
            .arg("plain.o")
            .output()
            .unwrap();
        assert!(plain.status.success(), "{}", s(&plain.stderr));
        let obj = std::fs::read(root.join(b).join("a.o")).unwrap();
        assert_eq!(
            obj,
            std::fs::read(root.join(b).join("plain.o")).unwrap(),
            "{b}: not the compiler's object"
        );
        obj
    };
    compile("build-one");
    assert_eq!((env.stat("misses"), env.stat("hits_direct")), (1, 0));
    // The miss recorded build-one's directories with trusted fingerprints: a hit checks them with
    // one stat each, and a header made in `early` changes its fingerprint.
    compile("build-one");
    assert_eq!(env.stat("hits_direct"), 1);
    w("build-one/early/plain.h", "#define PLAIN 20\n");
    compile("build-one");
    assert_eq!(
        env.stat("hits_direct"),
        1,
        "stale hit after early/plain.h appeared in build-one"
    );
    compile("build-two");
    assert_eq!(env.stat("hits_direct"), 2, "no hit in a fresh build dir");
    // A header in a new subdirectory of an earlier directory: `early/sys/demo.h` is found first now.
    w("build-two/early/sys/demo.h", "#define DEMO 10\n");
    compile("build-two");
    assert_eq!(env.stat("hits_direct"), 2, "stale hit after early/sys/demo.h appeared");
    // Directories old enough to trust, but new to the manifest (each hit lists them; a refresh is
    // recorded only when it saves more than this); then a header appears directly in `early`.
    compile("build-three");
    compile("build-three");
    assert_eq!(env.stat("hits_direct"), 4);
    w("build-three/early/plain.h", "#define PLAIN 21\n");
    compile("build-three");
    assert_eq!(env.stat("hits_direct"), 4, "stale hit after early/plain.h appeared");
    // A build dir made just now (too new to trust): hits, and a later header still misses.
    make_build_dir("build-four");
    compile("build-four");
    assert_eq!(env.stat("hits_direct"), 5);
    w("build-four/early/sys/demo.h", "#define DEMO 30\n");
    compile("build-four");
    assert_eq!(env.stat("hits_direct"), 5, "stale hit in a new build dir");
}

#[test]
fn include_and_profile_files_are_inputs() {
    let env = Env::new("inputs");
    env.dir.write("pre.h", "#define W 1\n");
    env.dir.write("a.c", "int f(void) { return W; }\n");
    let args = ["gcc", "-c", "a.c", "-include", "pre.h", "-o", "a.o"];
    env.ok(&args);
    env.ok(&args);
    assert_eq!(env.stat("hits"), 1);
    env.dir.write("pre.h", "#define W 2\n");
    env.ok(&args);
    assert_eq!(
        env.dir.read("a.o"),
        plain_gcc(&env.dir.path, &["-c", "a.c", "-include", "pre.h"])
    );
    assert_eq!(env.stat("hits"), 1);
    // clang -fprofile-instr-use=FILE: a different profile is a different result.
    let profdata = which::which("llvm-profdata")
        .or_else(|_| which::which("llvm-profdata-14"))
        .unwrap_or_else(|_| panic!("llvm-profdata is not installed; run .ci/run"));
    let prof = |count: u32| {
        env.dir.write("p.proftext", format!("# IR level Instrumentation Flag\n:ir\nf\n# Func Hash:\n1\n# Num Counters:\n1\n# Counter Values:\n{count}\n"));
        let out = std::process::Command::new(&profdata)
            .current_dir(&env.dir.path)
            .args(["merge", "-o", "p.profdata", "p.proftext"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
    };
    let cargs = [
        "clang",
        "-c",
        "a.c",
        "-include",
        "pre.h",
        "-O2",
        "-Wno-profile-instr-unprofiled",
        "-Wno-profile-instr-out-of-date",
        "-fprofile-instr-use=p.profdata",
        "-o",
        "c.o",
    ];
    prof(10);
    env.ok(&cargs);
    env.ok(&cargs);
    let hits = env.stat("hits");
    prof(20);
    env.ok(&cargs);
    assert_eq!(env.stat("hits"), hits, "a changed profile must miss");
}

#[test]
fn racing_compiles_share_one_manifest() {
    let env = Env::new("manrace");
    env.dir.write("inc/h.h", "#define V 3\n");
    env.dir.write("a.c", "#include \"h.h\"\nint f(void) { return V; }\n");
    let children: Vec<_> = (0..8)
        .map(|i| {
            env.cmd(cachepot_bin())
                .args(["gcc", "-c", "a.c", "-Iinc", "-o", &format!("o{i}.o")])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    env.ok(&["gcc", "-c", "a.c", "-Iinc", "-o", "last.o"]);
    assert!(env.stat("hits_direct") >= 1, "{}", env.stats());
    assert_eq!(env.stat("errors"), 0);
    let first = env.dir.read("o0.o");
    for i in 1..8 {
        assert_eq!(env.dir.read(&format!("o{i}.o")), first);
    }
}

#[test]
fn mmd_and_preprocessor_mode() {
    let mut env = Env::new("mmd");
    env.dir.write("inc/h.h", "#define V 3\n");
    env.dir.write(
        "a.c",
        "#include \"h.h\"\n#include <stdio.h>\nint f(void) { return V; }\n",
    );
    // -MMD leaves system headers out of the dependency file: learned through the preprocessor.
    let args = ["gcc", "-c", "a.c", "-Iinc", "-MMD", "-o", "a.o"];
    env.ok(&args);
    env.ok(&args);
    assert_eq!(env.stat("hits_direct"), 1, "{}", env.stats());
    let d = String::from_utf8(env.dir.read("a.d")).unwrap();
    assert!(!d.contains("stdio.h"), "{d}");
    env.set("CACHEPOT_DIRECT", "false");
    env.ok(&["gcc", "-c", "a.c", "-Iinc", "-o", "b.o"]);
    env.ok(&["gcc", "-c", "a.c", "-Iinc", "-o", "b.o"]);
    assert_eq!(env.stat("hits_preprocessed"), 1, "{}", env.stats());
}

#[test]
fn debug_dump_explains_the_key() {
    let mut env = Env::new("dump");
    env.set("CACHEPOT_DEBUG", "1");
    env.dir.write("inc/h.h", "#define V 3\n");
    env.dir.write("a.c", "#include \"h.h\"\nint f(void) { return V; }\n");
    env.ok(&["gcc", "-c", "a.c", "-Iinc", "-DX=1", "-o", "a.o"]);
    let text = String::from_utf8(env.dir.read("a.o.cachepot-key.txt")).unwrap();
    for want in [
        "compiler: ",
        "arg: -DX=1",
        "env CPATH: <unset>",
        "source: ",
        "include inc/h.h: ",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
}

#[test]
fn precompiled_headers_are_inputs() {
    let env = Env::new("pch");
    let gch = |v: u32| {
        env.dir.write("p.h", format!("#define PV {v}\nint pf(void);\n"));
        let out = std::process::Command::new("gcc")
            .current_dir(&env.dir.path)
            .args(["-x", "c-header", "p.h", "-o", "p.h.gch"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
    };
    env.dir.write("q.c", "#include \"p.h\"\nint g(void) { return PV; }\n");
    let args = ["gcc", "-c", "q.c", "-o", "q.o"];
    gch(1);
    env.ok(&args);
    env.ok(&args);
    assert_eq!(env.stat("hits"), 1);
    gch(2);
    env.ok(&args);
    assert_eq!(env.stat("hits"), 1, "a rebuilt precompiled header must miss");
    assert_eq!(env.dir.read("q.o"), plain_gcc(&env.dir.path, &["-c", "q.c"]));
}

#[test]
fn dependency_output_to_dev_null_records_nothing() {
    let env = Env::new("depnull");
    env.dir.write("inc/h.h", "#define V 3\n");
    env.dir.write("a.c", "#include \"h.h\"\nint f(void) { return V; }\n");
    let args = ["gcc", "-c", "a.c", "-Iinc", "-MD", "-MF", "/dev/null", "-o", "a.o"];
    env.ok(&args);
    env.dir.write("inc/h.h", "#define V 4\n");
    env.ok(&args);
    assert_eq!(env.dir.read("a.o"), plain_gcc(&env.dir.path, &["-c", "a.c", "-Iinc"]));
    assert_eq!(env.stat("hits"), 0);
}

#[test]
fn incbin_is_not_cached() {
    let env = Env::new("incbin");
    env.dir.write("blob.bin", "one");
    env.dir.write(
        "a.c",
        "__asm__(\".section .rodata\\n.incbin \\\"blob.bin\\\"\\n.text\");\nint f(void) { return 0; }\n",
    );
    env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    assert_eq!(env.stat("hits"), 0);
    assert_eq!(env.not_cacheable("incbin"), 2);
}
