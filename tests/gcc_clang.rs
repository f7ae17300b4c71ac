//! gcc and clang through `cachepot <compiler> …`: hits, misses, outputs and output streams, the
//! way a user checks them (files, bytes, exit codes, `--show-stats`).
mod common;
use common::*;
use std::os::unix::fs::FileTypeExt;

fn hello(env: &Env) {
    env.dir.write("inc/h.h", "#define VALUE 41\n");
    env.dir.write(
        "a.c",
        "#include \"h.h\"\nint f(void) { int unused; return VALUE + 1; }\n",
    );
}

#[test]
fn changed_header_misses_touched_header_hits() {
    let env = Env::new("header");
    hello(&env);
    let args = ["gcc", "-c", "a.c", "-Iinc", "-o", "a.o"];
    env.ok(&args);
    let first = env.dir.read("a.o");
    // Touch without changing: still a hit.
    let h = env.dir.join("inc/h.h");
    std::fs::write(&h, std::fs::read(&h).unwrap()).unwrap();
    env.ok(&args);
    assert_eq!(env.stat("hits"), 1);
    // Change the header: a miss, and the object changes.
    env.dir.write("inc/h.h", "#define VALUE 99\n");
    env.ok(&args);
    assert_eq!(env.stat("misses"), 2);
    assert_ne!(env.dir.read("a.o"), first);
}

#[test]
fn stdout_stderr_and_status_replayed() {
    let env = Env::new("replay");
    hello(&env);
    let a = env.ok(&["gcc", "-c", "a.c", "-Iinc", "-Wall"]);
    let b = env.ok(&["gcc", "-c", "a.c", "-Iinc", "-Wall"]);
    assert!(s(&a.stderr).contains("unused variable"), "{}", s(&a.stderr));
    assert_eq!(a.stderr, b.stderr);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(env.stat("hits"), 1);
    // Without colour flags and with a pipe as stderr, no escape codes.
    assert!(!a.stderr.contains(&0x1b));
}

#[test]
fn failing_compile_is_reported_and_not_cached() {
    let env = Env::new("fail");
    env.dir.write("bad.c", "int f(void) { return nope; }\n");
    for _ in 0..2 {
        let out = env.cachepot(&["gcc", "-c", "bad.c", "-o", "bad.o"]);
        assert!(!out.status.success());
        assert!(s(&out.stderr).contains("nope"), "{}", s(&out.stderr));
        assert!(!env.dir.join("bad.o").exists());
    }
    assert_eq!(env.stat("hits"), 0);
    assert_eq!(env.not_cacheable("compile_failed"), 2);
}

#[test]
fn dep_files_are_right_on_a_hit() {
    let env = Env::new("deps");
    hello(&env);
    std::fs::create_dir_all(env.dir.join("out")).unwrap();
    let cases: [&[&str]; 4] = [
        &["gcc", "-c", "a.c", "-Iinc", "-o", "out/a.o", "-MD"],
        &[
            "gcc",
            "-c",
            "a.c",
            "-Iinc",
            "-o",
            "out/a.o",
            "-MMD",
            "-MF",
            "out/custom.d",
            "-MT",
            "tgt",
            "-MP",
        ],
        &["gcc", "-c", "a.c", "-Iinc", "-o", "out/b.o", "-MD", "-MQ", "$weird"],
        &["gcc", "-c", "a.c", "-Iinc", "-o", "out/c.o", "-Wp,-MD,out/.c.o.d"],
    ];
    let dep_of = |c: &[&str]| -> String {
        if let Some(i) = c.iter().position(|a| *a == "-MF") {
            return c[i + 1].to_string();
        }
        if let Some(w) = c.iter().find(|a| a.starts_with("-Wp,")) {
            return w.rsplit(',').next().unwrap().to_string();
        }
        let o = c[c.iter().position(|a| *a == "-o").unwrap() + 1];
        o.replace(".o", ".d")
    };
    let mut expected = Vec::new();
    for c in cases {
        env.ok(c);
        let d = dep_of(c);
        expected.push((d.clone(), env.dir.read(&d)));
        std::fs::remove_file(env.dir.join(&d)).unwrap();
    }
    for (c, (d, want)) in cases.iter().zip(&expected) {
        env.ok(c);
        assert_eq!(&env.dir.read(d), want, "dep file {d} differs on a hit");
    }
    let text = String::from_utf8(expected[1].1.clone()).unwrap();
    assert!(text.starts_with("tgt:"), "{text}");
    let text = String::from_utf8(expected[0].1.clone()).unwrap();
    assert!(text.starts_with("out/a.o:"), "{text}");
    assert_eq!(env.stat("hits"), 4);
}

#[test]
fn split_dwarf_and_coverage_files_restored() {
    let env = Env::new("dwo");
    hello(&env);
    std::fs::create_dir_all(env.dir.join("o")).unwrap();
    for compiler in ["gcc", "clang"] {
        let dwo_args = [compiler, "-c", "a.c", "-Iinc", "-g", "-gsplit-dwarf", "-o", "o/a.o"];
        let cov_args = [compiler, "-c", "a.c", "-Iinc", "--coverage", "-o", "o/b.o"];
        env.ok(&dwo_args);
        env.ok(&cov_args);
        let dwo = env.dir.read("o/a.dwo");
        let gcno = env.dir.read("o/b.gcno");
        let obj = env.dir.read("o/a.o");
        for f in ["o/a.dwo", "o/b.gcno", "o/a.o", "o/b.o"] {
            std::fs::remove_file(env.dir.join(f)).unwrap();
        }
        env.ok(&dwo_args);
        env.ok(&cov_args);
        assert_eq!(env.dir.read("o/a.dwo"), dwo, "{compiler} .dwo");
        assert_eq!(env.dir.read("o/b.gcno"), gcno, "{compiler} .gcno");
        assert_eq!(env.dir.read("o/a.o"), obj);
    }
    assert_eq!(env.stat("hits"), 4);
}

#[test]
fn clang_and_clangxx_differ_on_a_c_file() {
    let env = Env::new("clangxx");
    env.dir.write("a.c", "int f(int x) { return x; }\n");
    env.ok(&["clang", "-c", "a.c", "-o", "c.o"]);
    env.ok(&["clang++", "-c", "a.c", "-o", "cxx.o"]);
    assert_ne!(
        env.dir.read("c.o"),
        env.dir.read("cxx.o"),
        "clang++ must compile a.c as C++"
    );
    assert_eq!(env.stat("misses"), 2);
    // And by full path.
    let gcc = require_tool("gcc");
    env.ok(&[gcc.to_str().unwrap(), "-c", "a.c", "-o", "g.o"]);
    env.ok(&[gcc.to_str().unwrap(), "-c", "a.c", "-o", "g.o"]);
    assert_eq!(env.stat("hits"), 1);
}

#[test]
fn not_cacheable_calls_pass_through_with_reasons() {
    let env = Env::new("nc");
    env.dir.write("a.c", "int main(void) { return 0; }\n");
    env.dir.write("b.c", "int g(void) { return 0; }\n");
    // (arguments, stable reason id, the option counted as its detail)
    let cases: [(&[&str], &str, Option<&str>); 8] = [
        (&["gcc", "a.c", "-o", "prog"], "linking", None),
        (&["gcc", "-E", "a.c", "-o", "a.i"], "preprocess_only", None),
        (&["gcc", "-M", "a.c"], "dependency_only", None),
        (&["gcc", "-c", "a.c", "b.c"], "multiple_sources", None),
        (&["gcc", "-c", "-x", "c", "-", "-o", "stdin.o"], "stdin_input", None),
        (
            &["gcc", "-c", "a.c", "-save-temps"],
            "extra_outputs",
            Some("-save-temps"),
        ),
        (&["gcc", "-c", "missing.c"], "missing_input", None),
        (
            &["gcc", "-c", "a.c", "-fstack-usage"],
            "extra_outputs",
            Some("-fstack-usage"),
        ),
    ];
    for (args, reason, detail) in cases {
        let before = env.not_cacheable(reason);
        let out = env
            .cmd(cachepot_bin())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let expect_ok = !args.contains(&"missing.c");
        assert_eq!(out.status.success(), expect_ok, "{args:?}: {}", s(&out.stderr));
        assert_eq!(
            env.not_cacheable(reason),
            before + 1,
            "{args:?} not counted as {reason:?}: {}",
            env.stats()
        );
        if let Some(d) = detail {
            assert_eq!(env.not_cacheable_detail(d), 1, "{args:?}: {}", env.stats());
        }
    }
    // The text form names each reason in words.
    let text = s(&env.ok(&["--show-stats"]).stdout);
    assert!(text.contains("not cacheable: linking (no -c or -S)"), "{text}");
    assert!(
        text.contains("not cacheable: writes files the cache does not keep"),
        "{text}"
    );
    // The pass-through did the real work.
    assert!(env.dir.join("prog").exists());
    assert!(env.dir.join("a.i").exists());
    assert!(env.dir.join("stdin.o").exists());
    assert!(env.dir.join("a.su").exists());
    let st = env.stats();
    assert_eq!(st["requests"], 8);
    assert_eq!(st["not_cacheable"], 8);
}

#[test]
fn output_to_dev_null_is_written_through() {
    let env = Env::new("devnull");
    env.dir.write("a.c", "int f(void) { return 1; }\n");
    // A miss whose outputs are /dev/null: the compiler writes there, nothing is renamed over it.
    env.ok(&["gcc", "-c", "a.c", "-o", "/dev/null", "-MD", "-MF", "/dev/null"]);
    env.ok(&["gcc", "-c", "a.c", "-o", "/dev/null", "-MD", "-MF", "/dev/null"]);
    // A hit whose output is /dev/null: written through.
    env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    env.ok(&["gcc", "-c", "a.c", "-o", "/dev/null"]);
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device(), "/dev/null was replaced");
    assert_eq!(env.stat("hits"), 1);
}

#[test]
fn response_files_are_expanded() {
    let env = Env::new("rsp");
    hello(&env);
    env.dir.write("args.rsp", "-c a.c \"-Iinc\" -o 'a.o' -DX=\"1 2\"\n");
    env.ok(&["gcc", "@args.rsp"]);
    env.ok(&["gcc", "@args.rsp"]);
    assert_eq!(env.stat("hits"), 1);
    assert!(env.dir.join("a.o").exists());
}

#[test]
fn corrupted_entry_is_a_counted_miss_and_rebuilt() {
    let env = Env::new("corrupt");
    hello(&env);
    let args = ["gcc", "-c", "a.c", "-Iinc", "-o", "a.o"];
    env.ok(&args);
    let good = env.dir.read("a.o");
    // Damage every entry file in the cache.
    let mut n = 0;
    for bucket in std::fs::read_dir(&env.cache).unwrap().flatten() {
        if !bucket.path().is_dir() || bucket.file_name() == "stats" {
            continue;
        }
        for sub in std::fs::read_dir(bucket.path()).unwrap().flatten() {
            if !sub.path().is_dir() {
                continue;
            }
            for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
                let mut bytes = std::fs::read(f.path()).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                bytes.truncate(bytes.len() - 3);
                std::fs::write(f.path(), bytes).unwrap();
                n += 1;
            }
        }
    }
    assert!(n >= 1);
    std::fs::remove_file(env.dir.join("a.o")).unwrap();
    env.ok(&args);
    assert_eq!(env.dir.read("a.o"), good);
    assert!(env.error_kind("corrupt_entry") >= 1, "{}", env.stats());
    // The bad entry was replaced: next time is a clean hit.
    env.ok(&args);
    assert_eq!(env.dir.read("a.o"), good);
}

#[test]
fn recache_and_disable() {
    let mut env = Env::new("recache");
    hello(&env);
    let args = ["gcc", "-c", "a.c", "-Iinc"];
    env.ok(&args);
    env.set("CACHEPOT_RECACHE", "1");
    env.ok(&args);
    assert_eq!(env.stat("misses"), 2);
    env.extra_env.clear();
    env.set("CACHEPOT_DISABLE", "true");
    env.ok(&args);
    env.extra_env.clear();
    let st = env.stats();
    assert_eq!(st["requests"], 2, "a disabled call is pure pass-through: {st}");
}
