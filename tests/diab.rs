//! Wind River diab (`dcc`, `dplus`) through a stand-in: no diab can be installed here, so
//! tests/data/diab-standin.sh plays its driver (the same options, `-E` with `# N "file"` lines,
//! the -Xmake-dependency family) and logs every run, so a test can see that a hit ran nothing.
mod common;
use common::*;

/// A `dcc` (or `dplus`) link to the stand-in in the test's own bin dir.
fn diab(env: &Env, name: &str) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diab-standin.sh");
    let bin = env.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(&script, &link).unwrap();
    }
    link.to_str().unwrap().to_string()
}

fn setup(name: &str) -> Env {
    let mut env = Env::new(name);
    let log = env.dir.join("runs.log");
    env.set("DIAB_STANDIN_LOG", log.to_str().unwrap());
    env.dir.write("inc/h.h", "#include \"g.h\"\n#define VALUE 41\n");
    env.dir.write("inc/g.h", "#define OTHER 1\n");
    env.dir
        .write("a.c", "#include \"h.h\"\nint f(void) { return VALUE + OTHER; }\n");
    env
}

fn runs(env: &Env) -> usize {
    std::fs::read_to_string(env.dir.join("runs.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

fn ok(env: &Env, driver: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec![driver];
    all.extend_from_slice(args);
    env.ok(&all)
}

#[test]
fn miss_then_a_hit_that_runs_nothing() {
    let env = setup("diab-hit");
    let dcc = diab(&env, "dcc");
    let args = ["-c", "-tPPCE500FS:vxworks69", "-Iinc", "-XO", "a.c", "-o", "a.o"];
    let miss = ok(&env, &dcc, &args);
    let filled = env.dir.read("a.o");
    let after_miss = runs(&env);
    std::fs::remove_file(env.dir.join("a.o")).unwrap();
    let hit = ok(&env, &dcc, &args);
    assert_eq!(env.stat("hits_direct"), 1, "{}", env.stats());
    assert_eq!(
        runs(&env),
        after_miss,
        "a direct hit runs neither the preprocessor nor the compiler"
    );
    assert_eq!(env.dir.read("a.o"), filled);
    assert!(
        s(&miss.stderr).contains("stand-in diab compiled"),
        "{}",
        s(&miss.stderr)
    );
    assert_eq!(hit.stderr, miss.stderr, "diagnostics replayed");
}

#[test]
fn header_and_target_changes_miss() {
    let env = setup("diab-change");
    let dcc = diab(&env, "dcc");
    let args = ["-c", "-tPPCE500FS:vxworks69", "-Iinc", "a.c", "-o", "a.o"];
    ok(&env, &dcc, &args);
    let first = env.dir.read("a.o");
    env.dir.write("inc/g.h", "#define OTHER 2\n");
    ok(&env, &dcc, &args);
    assert_eq!(env.stat("misses"), 2);
    assert_ne!(env.dir.read("a.o"), first);
    ok(&env, &dcc, &["-c", "-tARMV7LS:vxworks69", "-Iinc", "a.c", "-o", "a.o"]);
    assert_eq!(env.stat("misses"), 3, "another target");
    let mut with_env = setup("diab-dtarget");
    with_env.set("DTARGET", "MIPS");
    let dcc = diab(&with_env, "dcc");
    ok(&with_env, &dcc, &["-c", "-Iinc", "a.c"]);
    with_env.extra_env.retain(|(k, _)| k != "DTARGET");
    with_env.set("DTARGET", "PPC");
    ok(&with_env, &dcc, &["-c", "-Iinc", "a.c"]);
    assert_eq!(with_env.stat("misses"), 2, "DTARGET is keyed");
}

#[test]
fn make_dependency_savefile_is_restored() {
    let env = setup("diab-dep");
    let dcc = diab(&env, "dcc");
    let args = [
        "-c",
        "-Iinc",
        "a.c",
        "-o",
        "obj/a.o",
        "-Xmake-dependency=0xd",
        "-Xmake-dependency-savefile=obj/a.d",
    ];
    std::fs::create_dir_all(env.dir.join("obj")).unwrap();
    ok(&env, &dcc, &args);
    let dep = env.dir.read("obj/a.d");
    assert_eq!(s(&dep), "obj/a.o: a.c inc/h.h inc/g.h\n");
    std::fs::remove_file(env.dir.join("obj/a.d")).unwrap();
    std::fs::remove_file(env.dir.join("obj/a.o")).unwrap();
    ok(&env, &dcc, &args);
    assert_eq!(env.stat("hits_direct"), 1);
    assert_eq!(env.dir.read("obj/a.d"), dep);
    // The listing on stdout (no savefile) is replayed.
    let a = ok(&env, &dcc, &["-c", "-Iinc", "a.c", "-Xmake-dependency"]);
    let b = ok(&env, &dcc, &["-c", "-Iinc", "a.c", "-Xmake-dependency"]);
    assert_eq!(s(&a.stdout), "a.o: a.c inc/h.h inc/g.h\n");
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(env.stat("hits_direct"), 2);
}

#[test]
fn dplus_and_preprocessor_mode() {
    let mut env = setup("diab-cpp");
    env.set("CACHEPOT_DIRECT", "0");
    env.dir.write("b.cpp", "#include \"h.h\"\nint g() { return VALUE; }\n");
    let dplus = diab(&env, "dplus");
    ok(&env, &dplus, &["-c", "-Iinc", "b.cpp"]);
    let filled = env.dir.read("b.o");
    ok(&env, &dplus, &["-c", "-Iinc", "b.cpp"]);
    assert_eq!(env.stat("hits_preprocessed"), 1);
    assert_eq!(env.dir.read("b.o"), filled);
}

#[test]
fn not_cacheable_calls_pass_through() {
    let env = setup("diab-nc");
    let dcc = diab(&env, "dcc");
    let pre = ok(&env, &dcc, &["-E", "-Iinc", "a.c"]);
    assert!(s(&pre.stdout).contains("# 1 \"inc/h.h\""), "{}", s(&pre.stdout));
    assert_eq!(env.not_cacheable("preprocess_only"), 1);
    let link = env.cachepot(&[&dcc, "a.o", "-o", "app"]);
    assert!(
        !link.status.success(),
        "the stand-in cannot link: its error shows through"
    );
    assert_eq!(env.not_cacheable("linking"), 1);
    env.dir.write("bad.c", "#error broken\n");
    let bad = env.cachepot(&[&dcc, "-c", "bad.c"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(s(&bad.stderr).contains("broken"));
    assert_eq!(
        env.not_cacheable("compile_failed") + env.not_cacheable("preprocessor_failed"),
        1
    );
    let unknown = env.cachepot(&[&dcc, "-c", "a.c", "-frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2), "the compiler's own answer");
    assert_eq!(env.not_cacheable("unsupported_option"), 1);
    assert_eq!(env.stat("hits") + env.stat("misses"), 0);
}
