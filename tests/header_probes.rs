//! `__has_include` in the build's own files: a direct-mode hit when every probe can be followed
//! (its header name literal), and a miss with the right object once a probed header appears or
//! goes away; preprocessor mode, still right, when a probe cannot be followed. With gcc and clang.
mod common;
use common::*;
use std::process::Command;

/// `m.c` compiled with `cc` (and `extra`) through cachepot, linked with gcc and run: its stdout.
fn build_and_run(env: &Env, cc: &str, extra: &[&str]) -> String {
    let mut args = vec![cc, "-c", "m.c", "-o", "m.o"];
    args.extend_from_slice(extra);
    env.ok(&args);
    let out = Command::new("gcc")
        .current_dir(&env.dir.path)
        .args(["m.o", "-o", "prog"])
        .output()
        .unwrap();
    assert!(out.status.success(), "link: {}", s(&out.stderr));
    let out = Command::new(env.dir.join("prog")).output().unwrap();
    assert!(out.status.success(), "prog failed");
    s(&out.stdout)
}

/// (direct hits, preprocessed hits, misses)
fn counts(env: &Env) -> (u64, u64, u64) {
    (
        env.stat("hits_direct"),
        env.stat("hits_preprocessed"),
        env.stat("misses"),
    )
}

const COMPILERS: [&str; 2] = ["gcc", "clang"];

const PRINT_V: &str = "#include <stdio.h>\n#include \"cfg.h\"\nint main(void) { printf(\"%d\\n\", V); return 0; }\n";

#[test]
fn a_literal_probe_in_the_source_is_a_direct_hit_until_the_header_appears() {
    // With -MMD the include set is learned from a preprocessor run instead of the dependency file.
    for (cc, flags) in [
        ("gcc", &[][..]),
        ("clang", &[]),
        ("gcc", &["-MMD"]),
        ("clang", &["-MMD"]),
    ] {
        require_tool(cc);
        let env = Env::new(&format!("probe-src-{cc}-{}", flags.len()));
        // The probe only decides a macro: opt.h is never read, only looked for.
        env.dir.write(
            "m.c",
            "#include <stdio.h>\n#if __has_include(\"opt.h\")\n#define V 7\n#else\n#define V 0\n#endif\n\
             int main(void) { printf(\"%d\\n\", V); return 0; }\n",
        );
        assert_eq!(build_and_run(&env, cc, flags), "0\n");
        assert_eq!(build_and_run(&env, cc, flags), "0\n");
        assert_eq!(
            counts(&env),
            (1, 0, 1),
            "{cc}: the second call is a direct hit: {}",
            env.stats()
        );
        env.dir.write("opt.h", "\n");
        assert_eq!(
            build_and_run(&env, cc, flags),
            "7\n",
            "{cc}: stale after opt.h appeared: {}",
            env.stats()
        );
        assert_eq!(counts(&env), (1, 0, 2), "{cc}: {}", env.stats());
        assert_eq!(build_and_run(&env, cc, flags), "7\n");
        assert_eq!(counts(&env), (2, 0, 2), "{cc}: {}", env.stats());
        // Gone again: the first set holds again (a hit with the first object).
        std::fs::remove_file(env.dir.join("opt.h")).unwrap();
        assert_eq!(
            build_and_run(&env, cc, flags),
            "0\n",
            "{cc}: stale after opt.h went: {}",
            env.stats()
        );
    }
}

#[test]
fn a_probe_in_a_header_follows_a_header_appearing_in_a_later_directory_and_going() {
    for cc in COMPILERS {
        let env = Env::new(&format!("probe-hdr-{cc}"));
        env.dir.write("m.c", PRINT_V);
        env.dir.write(
            "inc/cfg.h",
            "#if __has_include(<zz_probe.h>)\n#define V 9\n#else\n#define V 0\n#endif\n",
        );
        env.dir.write("later/.keep", "");
        let flags = ["-Iinc", "-Ilater"];
        assert_eq!(build_and_run(&env, cc, &flags), "0\n");
        assert_eq!(build_and_run(&env, cc, &flags), "0\n");
        assert_eq!(counts(&env), (1, 0, 1), "{cc}: {}", env.stats());
        // In a directory searched after the one holding cfg.h.
        env.dir.write("later/zz_probe.h", "\n");
        assert_eq!(build_and_run(&env, cc, &flags), "9\n", "{cc}: stale: {}", env.stats());
        assert_eq!(build_and_run(&env, cc, &flags), "9\n");
        assert_eq!(counts(&env), (2, 0, 2), "{cc}: {}", env.stats());
        // The probed header that was found goes away.
        std::fs::remove_file(env.dir.join("later/zz_probe.h")).unwrap();
        assert_eq!(build_and_run(&env, cc, &flags), "0\n", "{cc}: stale: {}", env.stats());
        // … and appears in the first directory instead.
        env.dir.write("inc/zz_probe.h", "\n");
        let direct = env.stat("hits_direct");
        assert_eq!(build_and_run(&env, cc, &flags), "9\n", "{cc}: stale: {}", env.stats());
        assert_eq!(env.stat("hits_direct"), direct, "{cc}: {}", env.stats());
    }
}

#[test]
fn probes_through_aliases_defined_in_another_header() {
    for cc in COMPILERS {
        let env = Env::new(&format!("probe-alias-{cc}"));
        env.dir.write("m.c", PRINT_V);
        // A function-like alias with a string literal, and xxhash.h's object-like one.
        env.dir.write(
            "inc/has.h",
            "#define HAS(x) __has_include(x)\n#ifdef __has_include\n#  define HAS_OBJ __has_include\n#else\n#  define HAS_OBJ(x) 0\n#endif\n",
        );
        env.dir.write(
            "inc/cfg.h",
            "#include \"has.h\"\n#if HAS(\"p.h\")\n#define A 1\n#else\n#define A 0\n#endif\n\
             #if HAS_OBJ(<q.h>)\n#define B 2\n#else\n#define B 0\n#endif\n#define V (A + B)\n",
        );
        let flags = ["-Iinc"];
        assert_eq!(build_and_run(&env, cc, &flags), "0\n");
        assert_eq!(build_and_run(&env, cc, &flags), "0\n");
        assert_eq!(counts(&env), (1, 0, 1), "{cc}: {}", env.stats());
        // "p.h" is looked for beside cfg.h first.
        env.dir.write("inc/p.h", "\n");
        assert_eq!(build_and_run(&env, cc, &flags), "1\n", "{cc}: stale: {}", env.stats());
        env.dir.write("inc/q.h", "\n");
        assert_eq!(build_and_run(&env, cc, &flags), "3\n", "{cc}: stale: {}", env.stats());
        assert_eq!(build_and_run(&env, cc, &flags), "3\n");
        assert_eq!(counts(&env), (2, 0, 3), "{cc}: {}", env.stats());
    }
}

#[test]
fn probes_that_cannot_be_followed_use_preprocessor_mode() {
    // A macro as the header name; `<…>` through a function-like macro, whose argument is
    // expanded first (with `ZZ` defined as `p`, `HAS(<ZZ.h>)` looks for p.h); a literal probe, but
    // `-iwithprefix` adds a directory the include chain does not know.
    let v5 = "#define V 5\n#else\n#define V 0\n#endif\n";
    let cases: [(String, &str, &[&str]); 3] = [
        (format!("#if __has_include(HDR)\n{v5}"), "inc/p.h", &["-DHDR=\"p.h\""]),
        (
            format!("#define ZZ p\n#define HAS(x) __has_include(x)\n#if HAS(<ZZ.h>)\n{v5}"),
            "inc/p.h",
            &[],
        ),
        (
            format!("#if __has_include(<p.h>)\n{v5}"),
            "pre/p.h",
            &["-iprefix", "./", "-iwithprefix", "pre"],
        ),
    ];
    for cc in COMPILERS {
        for (i, (cfg, create, extra)) in cases.iter().enumerate() {
            let env = Env::new(&format!("probe-unknown-{cc}-{i}"));
            env.dir.write("m.c", PRINT_V);
            env.dir.write("inc/cfg.h", cfg);
            env.dir.write("pre/.keep", "");
            let mut flags = vec!["-Iinc"];
            flags.extend_from_slice(extra);
            assert_eq!(build_and_run(&env, cc, &flags), "0\n");
            assert_eq!(build_and_run(&env, cc, &flags), "0\n");
            assert_eq!(counts(&env), (0, 1, 1), "{cc} case {i}: {}", env.stats());
            env.dir.write(create, "\n");
            assert_eq!(
                build_and_run(&env, cc, &flags),
                "5\n",
                "{cc} case {i}: stale: {}",
                env.stats()
            );
            assert_eq!(build_and_run(&env, cc, &flags), "5\n");
            assert_eq!(counts(&env), (0, 2, 2), "{cc} case {i}: {}", env.stats());
        }
    }
}

#[test]
fn include_next_is_followed_like_a_probe() {
    // first/cfg.h `#include_next`s cfg.h: found in last/ now, in middle/ once it appears there.
    for cc in COMPILERS {
        let env = Env::new(&format!("probe-next-{cc}"));
        env.dir.write("m.c", PRINT_V);
        env.dir.write("first/cfg.h", "#include_next <cfg.h>\n");
        env.dir.write("middle/.keep", "");
        env.dir.write("last/cfg.h", "#define V 1\n");
        let flags = ["-Ifirst", "-Imiddle", "-Ilast"];
        assert_eq!(build_and_run(&env, cc, &flags), "1\n");
        assert_eq!(build_and_run(&env, cc, &flags), "1\n");
        assert_eq!(counts(&env), (1, 0, 1), "{cc}: {}", env.stats());
        env.dir.write("middle/cfg.h", "#define V 2\n");
        assert_eq!(build_and_run(&env, cc, &flags), "2\n", "{cc}: stale: {}", env.stats());
        assert_eq!(build_and_run(&env, cc, &flags), "2\n");
        assert_eq!(counts(&env), (2, 0, 2), "{cc}: {}", env.stats());
        // A non-literal one still goes to preprocessor mode.
        env.dir
            .write("first/cfg.h", "#define NEXT <cfg.h>\n#include_next NEXT\n");
        assert_eq!(build_and_run(&env, cc, &flags), "2\n");
        assert_eq!(build_and_run(&env, cc, &flags), "2\n");
        assert_eq!(counts(&env), (2, 1, 3), "{cc}: {}", env.stats());
    }
}
