//! MSVC through the real clang-cl: Debian's clang runs its MSVC driver when it is invoked as
//! `clang-cl` or `cl.exe` (a symlink the test makes). No Windows headers exist here, so sources
//! are self-contained and compiled with `/X`. Without `/Brepro` a COFF object embeds the time it
//! was made, so a hit is compared with the compile that filled the cache.
mod common;
use common::*;

/// A `clang-cl` (or `cl.exe`) link to the real clang in the test's own bin dir.
fn msvc_driver(env: &Env, name: &str) -> String {
    let clang = require_tool("clang");
    let bin = env.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(&clang, &link).unwrap();
    }
    link.to_str().unwrap().to_string()
}

fn sources(env: &Env) {
    env.dir
        .write("inc/h.h", "#pragma once\n#include \"g.h\"\n#define VALUE 41\n");
    env.dir.write("inc/g.h", "#define OTHER 1\n");
    env.dir.write(
        "a.c",
        "#include \"h.h\"\nint f(void) { int unused; return VALUE + OTHER; }\n",
    );
}

/// `cachepot <driver> args…` in the work dir.
fn run(env: &Env, driver: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec![driver];
    all.extend_from_slice(args);
    env.cachepot(&all)
}

fn ok(env: &Env, driver: &str, args: &[&str]) -> std::process::Output {
    let out = run(env, driver, args);
    assert!(
        out.status.success(),
        "{args:?} failed:\nstdout: {}\nstderr: {}",
        s(&out.stdout),
        s(&out.stderr)
    );
    out
}

#[test]
fn hit_restores_the_object_and_replays_show_includes() {
    let env = Env::new("msvc-hit");
    sources(&env);
    let cl = msvc_driver(&env, "clang-cl");
    let args = [
        "/nologo",
        "/c",
        "/X",
        "/Iinc",
        "a.c",
        "/Foa.obj",
        "/showIncludes",
        "/W4",
    ];
    let miss = ok(&env, &cl, &args);
    let filled = env.dir.read("a.obj");
    assert!(
        s(&miss.stdout).contains("Note: including file: inc/h.h"),
        "{}",
        s(&miss.stdout)
    );
    assert!(s(&miss.stderr).contains("unused"), "{}", s(&miss.stderr));
    std::fs::remove_file(env.dir.join("a.obj")).unwrap();
    let hit = ok(&env, &cl, &args);
    assert_eq!(env.stat("hits_direct"), 1);
    assert_eq!(env.stat("misses"), 1);
    assert_eq!(
        env.dir.read("a.obj"),
        filled,
        "the object of the compile that filled the cache"
    );
    assert_eq!(hit.stdout, miss.stdout, "/showIncludes is replayed byte for byte");
    assert_eq!(hit.stderr, miss.stderr);
}

#[test]
fn listing_the_cache_asked_for_is_not_shown() {
    let env = Env::new("msvc-quiet");
    sources(&env);
    let cl = msvc_driver(&env, "clang-cl");
    let args = ["/c", "/X", "/Iinc", "a.c"];
    let miss = ok(&env, &cl, &args);
    let hit = ok(&env, &cl, &args);
    assert_eq!(s(&miss.stdout), "", "cachepot's own /showIncludes stays hidden");
    assert_eq!(s(&hit.stdout), "");
    assert_eq!(env.stat("hits_direct"), 1);
    assert!(env.dir.join("a.obj").is_file(), "default object name");
}

#[test]
fn a_changed_header_misses() {
    let env = Env::new("msvc-header");
    sources(&env);
    let cl = msvc_driver(&env, "clang-cl");
    let args = ["/c", "/X", "/Iinc", "a.c", "/Foa.obj", "/showIncludes"];
    ok(&env, &cl, &args);
    let first = env.dir.read("a.obj");
    // A header reached only through another header: the listing names it too.
    env.dir.write("inc/g.h", "#define OTHER 2\n");
    let out = ok(&env, &cl, &args);
    assert_eq!(env.stat("misses"), 2);
    assert_eq!(env.stat("hits"), 0);
    assert_ne!(env.dir.read("a.obj"), first);
    assert!(s(&out.stdout).contains("inc/g.h"), "{}", s(&out.stdout));
    // And back: the first result is found again.
    env.dir.write("inc/g.h", "#define OTHER 1\n");
    ok(&env, &cl, &args);
    assert_eq!(env.stat("hits_direct"), 1);
    assert_eq!(env.dir.read("a.obj"), first);
}

#[test]
fn brepro_hit_equals_a_fresh_compile() {
    let env = Env::new("msvc-brepro");
    sources(&env);
    let cl = msvc_driver(&env, "clang-cl");
    ok(&env, &cl, &["/c", "/X", "/Iinc", "a.c", "/Brepro", "/Fox.obj"]);
    ok(&env, &cl, &["/c", "/X", "/Iinc", "a.c", "/Brepro", "/Fox.obj"]);
    assert_eq!(env.stat("hits"), 1);
    let fresh = std::process::Command::new(&cl)
        .args(["/c", "/X", "/Iinc", "a.c", "/Brepro", "/Fofresh.obj"])
        .current_dir(&env.dir.path)
        .status()
        .unwrap();
    assert!(fresh.success());
    assert_eq!(env.dir.read("x.obj"), env.dir.read("fresh.obj"));
}

#[test]
fn preprocessor_mode_hits() {
    let mut env = Env::new("msvc-cpp");
    env.set("CACHEPOT_DIRECT", "0");
    sources(&env);
    let cl = msvc_driver(&env, "clang-cl");
    let args = ["/c", "/X", "/Iinc", "a.c", "/Foa.obj", "/showIncludes"];
    let miss = ok(&env, &cl, &args);
    let filled = env.dir.read("a.obj");
    let hit = ok(&env, &cl, &args);
    assert_eq!(env.stat("hits_preprocessed"), 1);
    assert_eq!(env.dir.read("a.obj"), filled);
    assert_eq!(hit.stdout, miss.stdout);
}

#[test]
fn cl_exe_spellings_directories_and_utf16_response_files() {
    let env = Env::new("msvc-rsp");
    sources(&env);
    let cl = msvc_driver(&env, "cl.exe");
    std::fs::create_dir_all(env.dir.join("out")).unwrap();
    ok(&env, &cl, &["-c", "-X", "-Iinc", "a.c", "-Foout/"]);
    assert!(env.dir.join("out/a.obj").is_file(), "/Fo naming a directory");
    let filled = env.dir.read("out/a.obj");
    // The same call from a UTF-16 response file (as Visual Studio writes them) is the same key.
    let mut rsp = vec![0xff, 0xfe];
    for u in "/c /X \"/Iinc\"\r\na.c /Foout/".encode_utf16() {
        rsp.extend(u.to_le_bytes());
    }
    env.dir.write("args.rsp", rsp);
    std::fs::remove_file(env.dir.join("out/a.obj")).unwrap();
    ok(&env, &cl, &["@args.rsp"]);
    assert_eq!(env.stat("hits_direct"), 1, "{}", env.stats());
    assert_eq!(env.dir.read("out/a.obj"), filled);
}

#[test]
fn debug_info_in_the_object_is_keyed_on_its_directory() {
    let env = Env::new("msvc-z7");
    sources(&env);
    let cl = msvc_driver(&env, "clang-cl");
    let args = ["/c", "/X", "/Iinc", "a.c", "/Foa.obj", "/Z7"];
    ok(&env, &cl, &args);
    let filled = env.dir.read("a.obj");
    ok(&env, &cl, &args);
    assert_eq!(env.stat("hits_direct"), 1);
    assert_eq!(env.dir.read("a.obj"), filled);
    // The same sources in another directory: the object would name that one, so it misses.
    let other = env.dir.join("copy");
    std::fs::create_dir_all(other.join("inc")).unwrap();
    for f in ["a.c", "inc/h.h", "inc/g.h"] {
        std::fs::copy(env.dir.join(f), other.join(f)).unwrap();
    }
    let out = env
        .cmd(cachepot_bin())
        .current_dir(&other)
        .arg(&cl)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(env.stat("misses"), 2);
    let needle = other.to_str().unwrap().as_bytes();
    let obj = std::fs::read(other.join("a.obj")).unwrap();
    assert!(
        obj.windows(needle.len()).any(|w| w == needle),
        "CodeView names its directory"
    );
}

#[test]
fn precompiled_header_use_hits() {
    let env = Env::new("msvc-pch");
    env.dir.write("pch.h", "#define FROM_PCH 7\n");
    env.dir
        .write("b.c", "#include \"pch.h\"\nint g(void) { return FROM_PCH; }\n");
    env.dir.write("stub.c", "#include \"pch.h\"\n");
    let cl = msvc_driver(&env, "clang-cl");
    // The PCH is made outside the cache (/Yc is not cached: precompiled_header).
    let out = run(&env, &cl, &["/c", "/X", "/Ycpch.h", "/Fppch.pch", "stub.c"]);
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(env.not_cacheable("precompiled_header"), 1);
    assert!(env.dir.join("pch.pch").is_file());
    let args = ["/c", "/X", "/Yupch.h", "/Fppch.pch", "b.c", "/Fob.obj"];
    ok(&env, &cl, &args);
    let filled = env.dir.read("b.obj");
    ok(&env, &cl, &args);
    assert_eq!(env.stat("hits"), 1, "{}", env.stats());
    assert_eq!(env.dir.read("b.obj"), filled);
}

#[test]
fn not_cacheable_calls_pass_through_with_their_reason() {
    let env = Env::new("msvc-nc");
    sources(&env);
    let cl = msvc_driver(&env, "clang-cl");
    let cases: &[(&[&str], &str, Option<&str>)] = &[
        (&["/E", "/X", "/Iinc", "a.c"], "preprocess_only", None),
        (
            &["/X", "/Iinc", "a.c", "/Fea.exe", "/link", "/nodefaultlib"],
            "linking",
            None,
        ),
        (
            &["/c", "/X", "/Iinc", "a.c", "/FAs", "/Falisting.asm"],
            "extra_outputs",
            Some("/FA"),
        ),
        (&["/c", "/X", "/Iinc", "a.c", "/Zs"], "too_hard", Some("/Zs")),
        (&["/c", "/X", "/Iinc", "a.c", "/frobnicate"], "unsupported_option", None),
    ];
    for (args, reason, detail) in cases {
        let through = run(&env, &cl, args);
        let direct = std::process::Command::new(&cl)
            .args(*args)
            .current_dir(&env.dir.path)
            .output()
            .unwrap();
        assert_eq!(through.status.code(), direct.status.code(), "{args:?}");
        assert_eq!(through.stdout, direct.stdout, "{args:?}: the compiler's own output");
        assert_eq!(env.not_cacheable(reason), 1, "{args:?}: {}", env.stats());
        if let Some(d) = detail {
            assert_eq!(env.not_cacheable_detail(d), 1, "{args:?}");
        }
    }
    assert_eq!(env.stat("hits") + env.stat("misses"), 0);
    assert!(env.dir.join("listing.asm").is_file(), "/FA wrote its listing");
}

/// A `cl.exe` link to tests/data/cl-standin.sh: Microsoft's compiler does not run here, and
/// clang-cl neither echoes the source's name, writes `/sourceDependencies` nor a PDB for `/Zi`.
fn cl_standin(env: &mut Env) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cl-standin.sh");
    let bin = env.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("cl.exe");
    std::os::unix::fs::symlink(&script, &link).unwrap();
    let log = env.dir.join("runs.log");
    env.set("CL_STANDIN_LOG", log.to_str().unwrap());
    link.to_str().unwrap().to_string()
}

fn standin_runs(env: &Env) -> usize {
    std::fs::read_to_string(env.dir.join("runs.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn cl_exe_source_dependencies_are_written_on_a_hit() {
    let mut env = Env::new("msvc-srcdeps");
    sources(&env);
    let cl = cl_standin(&mut env);
    std::fs::create_dir_all(env.dir.join("deps")).unwrap();
    let args = [
        "/c",
        "/Iinc",
        "a.c",
        "/Foa.obj",
        "/showIncludes",
        "/sourceDependencies",
        "deps/",
    ];
    let miss = ok(&env, &cl, &args);
    assert_eq!(
        s(&miss.stdout),
        "a.c\nNote: including file: inc/h.h\nNote: including file:  inc/g.h\n"
    );
    let json = env.dir.read("deps/a.c.json");
    let obj = env.dir.read("a.obj");
    std::fs::remove_file(env.dir.join("deps/a.c.json")).unwrap();
    std::fs::remove_file(env.dir.join("a.obj")).unwrap();
    let runs = standin_runs(&env);
    let hit = ok(&env, &cl, &args);
    assert_eq!(standin_runs(&env), runs, "a direct hit runs no compiler");
    assert_eq!(env.stat("hits_direct"), 1);
    assert_eq!(env.dir.read("deps/a.c.json"), json);
    assert_eq!(env.dir.read("a.obj"), obj);
    assert_eq!(
        hit.stdout, miss.stdout,
        "the source's name and the listing, byte for byte"
    );
    // Without the user's /showIncludes, the listing cachepot asked for is not shown.
    let quiet = ok(&env, &cl, &["/c", "/Iinc", "a.c", "/Fob.obj"]);
    assert_eq!(s(&quiet.stdout), "a.c\n");
    env.dir.write("inc/g.h", "#define OTHER 2\n");
    ok(&env, &cl, &["/c", "/Iinc", "a.c", "/Fob.obj"]);
    assert_eq!(env.stat("misses"), 3, "a nested header's change misses");
}

#[test]
fn cl_exe_pdb_calls_pass_through() {
    let mut env = Env::new("msvc-pdb");
    sources(&env);
    let cl = cl_standin(&mut env);
    for flag in ["/Zi", "-Zi"] {
        ok(&env, &cl, &["/c", "/Iinc", "a.c", flag]);
    }
    assert_eq!(env.not_cacheable("too_hard"), 2);
    assert_eq!(env.not_cacheable_detail("/Zi, /ZI (a PDB shared between compiles)"), 2);
    assert_eq!(
        s(&env.dir.read("vc140.pdb")),
        "PDB record\nPDB record\n",
        "the compiler wrote its PDB each time"
    );
}

#[test]
fn a_header_that_would_shadow_misses() {
    let env = Env::new("msvc-shadow");
    env.dir.write("second/h.h", "#define VALUE 1\n");
    std::fs::create_dir_all(env.dir.join("first")).unwrap();
    env.dir.write("a.c", "#include <h.h>\nint f(void) { return VALUE; }\n");
    let cl = msvc_driver(&env, "clang-cl");
    let args = ["/c", "/X", "/Ifirst", "/Isecond", "a.c", "/Foa.obj"];
    ok(&env, &cl, &args);
    let first = env.dir.read("a.obj");
    ok(&env, &cl, &args);
    assert_eq!(env.stat("hits_direct"), 1);
    // A new h.h in a directory searched earlier is what the compiler would read now.
    env.dir.write("first/h.h", "#define VALUE 2\n");
    ok(&env, &cl, &args);
    assert_eq!(env.stat("misses"), 2, "{}", env.stats());
    assert_ne!(env.dir.read("a.obj"), first);
}

/// ninja's `deps = msvc` reads /showIncludes from the compiler's stdout: after a build from the
/// cache it knows the same headers as after a real compile, and rebuilds when one changes.
#[test]
fn ninja_reads_the_replayed_listing() {
    let env = Env::new("msvc-ninja");
    sources(&env);
    let ninja = require_tool("ninja");
    let cl = msvc_driver(&env, "clang-cl");
    env.dir.write(
        "build.ninja",
        format!(
            "msvc_deps_prefix = Note: including file:\nrule cc\n  command = {} {cl} /nologo /c /X /Iinc /showIncludes $in /Fo$out\n  deps = msvc\nbuild a.obj: cc a.c\n",
            cachepot_bin().display()
        ),
    );
    let build = || {
        let out = env.cmd(&ninja).output().unwrap();
        assert!(out.status.success(), "{}{}", s(&out.stdout), s(&out.stderr));
        out
    };
    let deps = || s(&env.cmd(&ninja).args(["-t", "deps", "a.obj"]).output().unwrap().stdout);
    build();
    let after_miss = deps();
    assert!(
        after_miss.contains("inc/h.h") && after_miss.contains("inc/g.h"),
        "{after_miss}"
    );
    let obj = env.dir.read("a.obj");
    // A clean build dir (no objects, no ninja logs) built from the cache.
    for f in ["a.obj", ".ninja_deps", ".ninja_log"] {
        std::fs::remove_file(env.dir.join(f)).unwrap();
    }
    let out = build();
    assert_eq!(env.stat("hits_direct"), 1);
    assert!(
        !s(&out.stdout).contains("Note: including file"),
        "ninja consumed the listing"
    );
    assert_eq!(env.dir.read("a.obj"), obj);
    let after_hit = deps();
    assert_eq!(
        after_hit.lines().skip(1).collect::<Vec<_>>(),
        after_miss.lines().skip(1).collect::<Vec<_>>()
    );
    // ninja knows the nested header: changing it rebuilds, and the cache misses.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.dir.write("inc/g.h", "#define OTHER 5\n");
    build();
    assert_eq!(env.stat("misses"), 2);
}
