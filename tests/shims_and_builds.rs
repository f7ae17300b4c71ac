//! The shim directory and real builds through it: make -j8 twice (second all hits), two builds at
//! once on one cache, no recursion, a missing compiler, a cache that cannot be written.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const FILES: usize = 12;

/// A small real C project: a header, FILES sources, a main, a Makefile.
fn write_project(root: &Path) {
    std::fs::create_dir_all(root.join("include")).unwrap();
    std::fs::write(
        root.join("include/lib.h"),
        "#pragma once\n#include <stdio.h>\nint part_sum(void);\n",
    )
    .unwrap();
    let mut decls = String::new();
    let mut calls = String::new();
    for i in 0..FILES {
        std::fs::write(
            root.join(format!("f{i}.c")),
            format!("#include \"lib.h\"\nint f{i}(void) {{ static const char s[] = \"f{i}\"; return (int)sizeof s + {i}; }}\n"),
        )
        .unwrap();
        decls.push_str(&format!("int f{i}(void);\n"));
        calls.push_str(&format!(" + f{i}()"));
    }
    std::fs::write(
        root.join("main.c"),
        format!("#include \"lib.h\"\n{decls}int main(void) {{ printf(\"sum=%d\\n\", 0{calls}); return 0; }}\n"),
    )
    .unwrap();
    let objs: Vec<String> = (0..FILES).map(|i| format!("f{i}.o")).chain(["main.o".into()]).collect();
    std::fs::write(
        root.join("Makefile"),
        format!(
            "CFLAGS = -O2 -g -Iinclude -MMD\nprog: {objs}\n\t$(CC) -o $@ $^\n%.o: %.c\n\t$(CC) $(CFLAGS) -c $< -o $@\nclean:\n\trm -f *.o *.d prog\n-include *.d\n",
            objs = objs.join(" ")
        ),
    )
    .unwrap();
}

fn install_shims(env: &Env) -> std::path::PathBuf {
    let shims = env.dir.join("shims");
    let out = env.ok(&["--install-shims", shims.to_str().unwrap()]);
    assert!(s(&out.stdout).contains("gcc"), "{}", s(&out.stdout));
    shims
}

fn path_with(first: &Path) -> String {
    format!("{}:{}", first.display(), std::env::var("PATH").unwrap())
}

fn make(env: &Env, dir: &Path, path: &str, args: &[&str]) -> std::process::Output {
    let out = env
        .cmd("make")
        .current_dir(dir)
        .env("PATH", path)
        .env("CC", "cc")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make failed: {}\n{}",
        s(&out.stdout),
        s(&out.stderr)
    );
    out
}

#[test]
fn shim_dir_links_only_installed_compilers_and_is_idempotent() {
    let env = Env::new("shims");
    let shims = install_shims(&env);
    for name in ["cc", "c++", "gcc", "g++", "clang", "clang++"] {
        let link = shims.join(name);
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink(), "{name}");
    }
    // Versioned names exist only when that compiler exists.
    let gcc_major = s(&Command::new("gcc").arg("-dumpversion").output().unwrap().stdout)
        .trim()
        .to_string();
    assert!(shims.join(format!("gcc-{gcc_major}")).exists());
    assert!(!shims.join("gcc-3").exists());
    assert!(!shims.join("gcc-ar").exists() && !shims.join("clang-format").exists());
    // A foreign file is never overwritten; a rerun is idempotent.
    std::fs::remove_file(shims.join("g++")).unwrap();
    std::fs::write(shims.join("g++"), "mine").unwrap();
    let out = env.ok(&["--install-shims", shims.to_str().unwrap()]);
    assert_eq!(std::fs::read(shims.join("g++")).unwrap(), b"mine");
    assert!(s(&out.stdout).contains("left alone"), "{}", s(&out.stdout));
    let before: Vec<_> = std::fs::read_dir(&shims)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    env.ok(&["--install-shims", shims.to_str().unwrap()]);
    let after: Vec<_> = std::fs::read_dir(&shims)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len());
}

#[test]
fn make_j8_through_shims_twice_second_all_hits() {
    let env = Env::new("make");
    let shims = install_shims(&env);
    let proj = env.dir.join("proj");
    write_project(&proj);
    let path = path_with(&shims);
    make(&env, &proj, &path, &["-j8"]);
    let run1 = Command::new(proj.join("prog")).output().unwrap();
    assert!(s(&run1.stdout).starts_with("sum="));
    let st = env.stats();
    assert_eq!(st["misses"], FILES as u64 + 1, "{st}");
    make(&env, &proj, &path, &["clean"]);
    make(&env, &proj, &path, &["-j8"]);
    let st = env.stats();
    assert_eq!(st["hits"], FILES as u64 + 1, "{st}");
    assert_eq!(st["misses"], FILES as u64 + 1, "{st}");
    // The link step is passed through and counted.
    assert_eq!(st["not_cacheable_reasons"]["linking"], 2);
    let run2 = Command::new(proj.join("prog")).output().unwrap();
    assert_eq!(run1.stdout, run2.stdout);
}

#[test]
fn two_builds_at_once_share_one_cache() {
    let env = Env::new("concurrent");
    let shims = install_shims(&env);
    let (a, b) = (env.dir.join("a"), env.dir.join("b"));
    write_project(&a);
    write_project(&b);
    let path = path_with(&shims);
    let spawn = |dir: &Path| {
        env.cmd("make")
            .current_dir(dir)
            .env("PATH", &path)
            .env("CC", "cc")
            .arg("-j4")
            .spawn()
            .unwrap()
    };
    let (mut pa, mut pb) = (spawn(&a), spawn(&b));
    assert!(pa.wait().unwrap().success() && pb.wait().unwrap().success());
    let st = env.stats();
    let compiles = FILES as u64 + 1;
    assert_eq!(
        st["hits"].as_u64().unwrap() + st["misses"].as_u64().unwrap(),
        2 * compiles,
        "{st}"
    );
    assert_eq!(st["errors"], 0, "{st}");
    for d in [&a, &b] {
        let out = Command::new(d.join("prog")).output().unwrap();
        assert!(s(&out.stdout).starts_with("sum="));
    }
    // The objects the racing builds made are the bytes a rebuild gets (-g records cwd, so each
    // tree is compared with a clean rebuild of its own, which hits), and those of plain gcc.
    let objects = |d: &Path| -> Vec<Vec<u8>> {
        let mut names: Vec<String> = (0..FILES).map(|i| format!("f{i}.o")).collect();
        names.push("main.o".into());
        names.iter().map(|n| std::fs::read(d.join(n)).unwrap()).collect()
    };
    let raced = objects(&a);
    make(&env, &a, &path, &["clean"]);
    let hits = env.stat("hits");
    make(&env, &a, &path, &["-j2"]);
    assert_eq!(env.stat("hits"), hits + compiles, "{}", env.stats());
    assert!(
        objects(&a) == raced,
        "a rebuild from the cache gave other bytes than the racing build"
    );
    make(&env, &a, &path, &["clean"]);
    let out = env
        .cmd("make")
        .current_dir(&a)
        .env("CC", "gcc")
        .arg("-j2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(objects(&a) == raced, "the cached objects differ from plain gcc's");
}

#[test]
fn shim_dir_twice_on_path_does_not_recurse() {
    let env = Env::new("recurse");
    let shims = install_shims(&env);
    env.dir.write("a.c", "int f(void) { return 1; }\n");
    let path = format!("{0}:{0}:{1}", shims.display(), std::env::var("PATH").unwrap());
    let out = env
        .cmd(shims.join("gcc"))
        .env("PATH", &path)
        .args(["-c", "a.c", "-o", "a.o"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert_eq!(env.stat("misses"), 1);
    // A plain copy of the binary first on PATH, twice over: the recursion guard stops it.
    let copies = env.dir.join("copies");
    std::fs::create_dir_all(copies.join("x")).unwrap();
    std::fs::copy(cachepot_bin(), copies.join("gcc")).unwrap();
    std::fs::copy(cachepot_bin(), copies.join("x/gcc")).unwrap();
    let path = format!(
        "{}:{}:{}",
        copies.display(),
        copies.join("x").display(),
        std::env::var("PATH").unwrap()
    );
    let out = env
        .cmd(copies.join("gcc"))
        .env("PATH", &path)
        .args(["-c", "a.c", "-o", "b.o"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(env.dir.join("b.o").exists());
}

#[test]
fn missing_compiler_is_one_clear_line() {
    let env = Env::new("missing");
    let shims = env.dir.join("onlyme");
    std::fs::create_dir_all(&shims).unwrap();
    std::os::unix::fs::symlink(cachepot_bin(), shims.join("gcc")).unwrap();
    let out = env
        .cmd(shims.join("gcc"))
        .env("PATH", &shims)
        .arg("--version")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = s(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("`gcc`") && err.contains(&format!("PATH={}", shims.display())),
        "{err}"
    );
    // CACHEPOT_PATH overrides PATH for the search.
    let out = env
        .cmd(shims.join("gcc"))
        .env("PATH", &shims)
        .env("CACHEPOT_PATH", std::env::var("PATH").unwrap())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
}

#[test]
fn unwritable_cache_never_breaks_the_build() {
    let mut env = Env::new("unwritable");
    env.dir.write("a.c", "int f(void) { return 1; }\n");
    // A file where the cache directory should be.
    let blocker = env.dir.write("blocker", "not a directory");
    env.set("CACHEPOT_DIR", blocker.join("cache").to_str().unwrap());
    let out = env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    assert!(
        out.stderr.is_empty(),
        "cache faults must not reach stderr: {}",
        s(&out.stderr)
    );
    assert!(env.dir.join("a.o").exists());
    // A directory another user cannot write, for a compile run as that user (root ignores modes).
    let setpriv = require_tool("setpriv");
    let env2 = Env::new("unwritable2");
    std::fs::create_dir_all(&env2.cache).unwrap();
    std::fs::set_permissions(&env2.dir.path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&env2.cache, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env2.dir.write("a.c", "int f(void) { return 1; }\n");
    std::fs::set_permissions(
        env2.dir.join("a.c"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = env2
        .cmd(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(cachepot_bin())
        .args(["gcc", "-c", "a.c", "-o", "a.o"])
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", s(&out.stderr));
    assert!(env2.dir.join("a.o").exists());
}

#[test]
fn bad_settings_are_quiet_in_a_compile_and_fail_in_the_cli() {
    // tests/false_hits.rs has the autoconf case and the terminal line; here: the CLI.
    let mut env = Env::new("badcfg");
    env.set("XDG_RUNTIME_DIR", env.dir.join("run").display().to_string());
    env.dir.write("a.c", "int f(void) { return 1; }\n");
    env.set("CACHEPOT_CACHE_SIZE", "lots");
    let out = env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    assert_eq!(s(&out.stderr), "", "a bad setting reached the compiler's stderr");
    assert!(env.dir.join("a.o").exists());
    let out = env.cachepot(&["--show-config"]);
    assert!(!out.status.success());
    assert!(
        s(&out.stderr).contains("CACHEPOT_CACHE_SIZE=lots"),
        "{}",
        s(&out.stderr)
    );
    env.extra_env.clear();
    env.set("CACHEPOT_RECACHE", "perhaps");
    let out = env.cachepot(&["--show-stats"]);
    assert!(!out.status.success());
    assert!(
        s(&out.stderr).contains("1/0, true/false, yes/no, on/off"),
        "{}",
        s(&out.stderr)
    );
}

#[test]
fn config_file_env_precedence_and_show_config() {
    let mut env = Env::new("cfgfile");
    let conf = env.dir.write(
        "c.toml",
        "direct = false\n[cache.disk]\nsize = \"2G\"\ndir = \"/tmp/from-file\"\n",
    );
    env.set("CACHEPOT_CONF", conf.to_str().unwrap());
    env.set("CACHEPOT_CACHE_SIZE", "1G");
    let out = s(&env.ok(&["--show-config"]).stdout);
    assert!(
        out.contains("1073741824") && out.contains("env CACHEPOT_CACHE_SIZE"),
        "{out}"
    );
    // CACHEPOT_DIR from the harness wins over the file's dir.
    assert!(out.contains("env CACHEPOT_DIR"), "{out}");
    assert!(
        out.contains("direct") && out.contains(&format!("file {}", conf.display())),
        "{out}"
    );
    let json: serde_json::Value = serde_json::from_slice(&env.ok(&["--show-config", "--json"]).stdout).unwrap();
    assert_eq!(json["settings"]["cache_size"]["value"], 1073741824u64);
}

#[test]
fn zero_stats_and_clear_cache() {
    let env = Env::new("zero");
    env.dir.write("a.c", "int f(void) { return 1; }\n");
    env.ok(&["gcc", "-c", "a.c"]);
    assert!(env.stat("entries") >= 1);
    env.ok(&["--zero-stats"]);
    assert_eq!(env.stat("requests"), 0);
    env.ok(&["--clear-cache"]);
    assert_eq!(env.stat("entries"), 0);
    env.ok(&["gcc", "-c", "a.c"]);
    assert_eq!(env.stat("misses"), 1);
    let text = s(&env.ok(&["--show-stats"]).stdout);
    for want in [
        "cache location",
        "compile requests",
        "cache hits",
        "cache misses",
        "hit rate",
        "cache errors",
        "entries",
        "of 10.0 GiB",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
}

#[test]
fn install_sh_stages_a_package_with_destdir() {
    let env = Env::new("install");
    let stage = env.dir.join("stage");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let out = env
        .cmd("sh")
        .arg(script)
        .args(["--no-build", "--prefix", "/usr", "--destdir", stage.to_str().unwrap()])
        .env("CACHEPOT_BIN", cachepot_bin())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    assert!(stage.join("usr/bin/cachepot").is_file());
    // Relative, so the staged root and the installed one both resolve it.
    let link = std::fs::read_link(stage.join("usr/lib/cachepot/gcc")).unwrap();
    assert_eq!(link, std::path::PathBuf::from("../../bin/cachepot"));
}

#[test]
fn cmake_build_through_shims_hits_the_second_time() {
    let env = Env::new("cmake");
    require_tool("cmake");
    let shims = install_shims(&env);
    let src = env.dir.join("src");
    write_project(&src);
    let sources: Vec<String> = (0..FILES).map(|i| format!("f{i}.c")).chain(["main.c".into()]).collect();
    std::fs::write(
        src.join("CMakeLists.txt"),
        format!(
            "cmake_minimum_required(VERSION 3.10)\nproject(demo C)\ninclude_directories(include)\nadd_executable(prog {})\n",
            sources.join(" ")
        ),
    )
    .unwrap();
    let path = path_with(&shims);
    for build in ["b1", "b2"] {
        let dir = env.dir.join(build);
        std::fs::create_dir_all(&dir).unwrap();
        let out = env
            .cmd("cmake")
            .current_dir(&dir)
            .env("PATH", &path)
            .env("CC", "cc")
            .arg(&src)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", s(&out.stdout), s(&out.stderr));
        let out = env
            .cmd("cmake")
            .current_dir(&dir)
            .env("PATH", &path)
            .args(["--build", ".", "--", "-j4"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", s(&out.stdout), s(&out.stderr));
        let run = Command::new(dir.join("prog")).output().unwrap();
        assert!(s(&run.stdout).starts_with("sum="));
    }
    // The second build dir compiles the same sources with the same flags: all hits.
    let st = env.stats();
    assert!(st["hits"].as_u64().unwrap() > FILES as u64, "{st}");
}

#[test]
fn size_limit_evicts_old_entries() {
    let mut env = Env::new("evict");
    env.set("CACHEPOT_CACHE_SIZE", "256K");
    for i in 0..40 {
        env.dir
            .write(&format!("f{i}.c"), format!("int f{i}(void) {{ return {i}; }}\n"));
        env.ok(&["gcc", "-c", &format!("f{i}.c")]);
    }
    let st = env.stats();
    assert!(st["bytes"].as_u64().unwrap() <= 256 * 1024, "{st}");
    assert_eq!(st["max_bytes"], 256 * 1024);
    // The newest compile is still a hit.
    env.ok(&["gcc", "-c", "f39.c"]);
    assert_eq!(env.stat("hits"), 1);
}

#[test]
fn restored_objects_get_the_compilers_mode() {
    let env = Env::new("mode");
    env.dir.write("a.c", "int f(void) { return 1; }\n");
    env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(env.dir.join(p)).unwrap().permissions()) & 0o777
    };
    let compiled = mode("a.o");
    std::fs::remove_file(env.dir.join("a.o")).unwrap();
    env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    assert_eq!(env.stat("hits"), 1);
    assert_eq!(mode("a.o"), compiled);
}

#[test]
fn colour_on_a_terminal_plain_otherwise() {
    let env = Env::new("colour");
    let script = require_tool("script");
    env.dir.write("w.c", "int f(void) { int unused; return 0; }\n");
    // First call through a pseudo-terminal: the compiler is asked for colour.
    let cmd = format!("{} gcc -Wall -c w.c -o w.o", cachepot_bin().display());
    let out = env.cmd(&script).args(["-qec", &cmd, "/dev/null"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout.contains(&0x1b),
        "no colour on a terminal: {}",
        s(&out.stdout)
    );
    // A hit with stderr to a pipe: no escape codes, same text as gcc's own.
    let hit = env.ok(&["gcc", "-Wall", "-c", "w.c", "-o", "w.o"]);
    assert_eq!(env.stat("hits"), 1);
    assert!(!hit.stderr.contains(&0x1b));
    let plain = Command::new("gcc")
        .current_dir(&env.dir.path)
        .args(["-Wall", "-c", "w.c", "-o", "p.o"])
        .output()
        .unwrap();
    assert_eq!(s(&hit.stderr), s(&plain.stderr));
}

#[test]
fn autoconf_configure_and_make_through_shims() {
    let env = Env::new("autoconf");
    let autoconf = require_tool("autoconf");
    let shims = install_shims(&env);
    let src = env.dir.join("src");
    write_project(&src);
    std::fs::write(
        src.join("configure.ac"),
        "AC_INIT([demo], [1.0])\nAC_PROG_CC\nAC_CHECK_HEADERS([stdio.h unistd.h])\nAC_CHECK_FUNCS([printf])\nAC_CONFIG_FILES([Makefile.gen])\nAC_OUTPUT\n",
    )
    .unwrap();
    std::fs::write(src.join("Makefile.gen.in"), "CC = @CC@\nCFLAGS = @CFLAGS@\n").unwrap();
    let out = env.cmd(&autoconf).current_dir(&src).output().unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let path = path_with(&shims);
    let out = env
        .cmd("./configure")
        .current_dir(&src)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "configure failed through the shims:\n{}\n{}",
        s(&out.stdout),
        s(&out.stderr)
    );
    let stdout = s(&out.stdout);
    assert!(
        stdout.contains("checking whether the C compiler works... yes"),
        "{stdout}"
    );
    let generated = std::fs::read_to_string(src.join("Makefile.gen")).unwrap();
    assert!(
        generated.contains("CC = gcc") || generated.contains("CC = cc"),
        "{generated}"
    );
    make(&env, &src, &path, &["-j4"]);
    make(&env, &src, &path, &["clean"]);
    make(&env, &src, &path, &["-j4"]);
    assert!(env.stat("hits") > FILES as u64, "{}", env.stats());
}
