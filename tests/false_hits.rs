//! The catalogue of stale-hit paths (issue 12): one test per way a cache could hand out an object
//! that does not match the sources, each building the situation with real compilers and checking
//! what the user gets — the program's behaviour, the build's files, `--show-stats --json`.
//! bench/false_hits_ccache.sh runs the same steps with ccache for comparison.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Link `objects` with gcc and run the program; its stdout.
fn run_program(dir: &Path, objects: &[&str]) -> String {
    let out = Command::new("gcc")
        .current_dir(dir)
        .args(objects)
        .args(["-o", "prog"])
        .output()
        .unwrap();
    assert!(out.status.success(), "link: {}", s(&out.stderr));
    let out = Command::new(dir.join("prog")).output().unwrap();
    assert!(out.status.success(), "prog failed");
    s(&out.stdout)
}

// ---- Nothing of cachepot's on the compiler's stderr ----

/// A configure script made with autoconf whose checks use AC_LANG_WERROR: any text on the
/// compiler's stderr turns a check into "no". With a mistyped setting in the environment, the
/// results must be those of the plain compiler.
fn configure_project(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("configure.ac"),
        "AC_INIT([demo], [1.0])\nAC_PROG_CC\nAC_LANG_WERROR\nAC_CHECK_HEADERS([stdio.h stdlib.h unistd.h])\n\
         AC_CHECK_FUNCS([mmap printf])\nAC_CONFIG_HEADERS([config.h])\nAC_OUTPUT\n",
    )
    .unwrap();
    for tool in ["autoconf", "autoheader"] {
        let out = Command::new(require_tool(tool)).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "{tool}: {}", s(&out.stderr));
    }
}

#[test]
fn bad_setting_never_reaches_the_compilers_stderr() {
    let mut env = Env::new("fh-badsetting");
    env.set("CACHEPOT_DIRECT", "maybe");
    // The private state dir (where a count goes when the cache dir cannot take it) of this test.
    env.set("XDG_RUNTIME_DIR", env.dir.join("run").display().to_string());
    let plain = env.dir.join("plain");
    let cached = env.dir.join("cached");
    configure_project(&plain);
    configure_project(&cached);
    let out = env
        .cmd("./configure")
        .current_dir(&plain)
        .env("CC", "gcc")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let cc = format!("{} gcc", cachepot_bin().display());
    let out = env
        .cmd("./configure")
        .current_dir(&cached)
        .env("CC", &cc)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let want = std::fs::read_to_string(plain.join("config.h")).unwrap();
    assert!(want.contains("#define HAVE_STDIO_H 1"), "{want}");
    assert!(want.contains("#define HAVE_MMAP 1"), "{want}");
    assert_eq!(
        std::fs::read_to_string(cached.join("config.h")).unwrap(),
        want,
        "config.h through cachepot with CACHEPOT_DIRECT=maybe differs from plain gcc's"
    );
    // One compile by hand: stderr is the compiler's (empty), the program works.
    env.dir.write(
        "m.c",
        "#include <stdio.h>\nint main(void) { puts(\"ran\"); return 0; }\n",
    );
    let out = env.cachepot(&["gcc", "-c", "m.c", "-o", "m.o"]);
    assert!(out.status.success());
    assert_eq!(s(&out.stderr), "", "cachepot wrote on the compiler's stderr");
    assert_eq!(run_program(&env.dir.path, &["m.o"]), "ran\n");
    // The commands still fail loudly on the bad setting …
    for cmd in ["--show-config", "--show-stats"] {
        let out = env.cachepot(&[cmd]);
        assert!(!out.status.success(), "{cmd} accepted CACHEPOT_DIRECT=maybe");
        assert!(s(&out.stderr).contains("CACHEPOT_DIRECT=maybe"), "{}", s(&out.stderr));
    }
    // … and, without it, --show-stats counts every compile that met it, on its first line.
    env.extra_env.retain(|(k, _)| k != "CACHEPOT_DIRECT");
    let stats = env.stats();
    let n = stats["config_error"].as_u64().unwrap();
    assert!(n >= 10, "configure's compiles were not counted: {stats}");
    assert_eq!(stats["hits"], 0);
    assert_eq!(stats["misses"], 0);
    let text = s(&env.ok(&["--show-stats"]).stdout);
    assert!(
        text.lines().next().unwrap().starts_with("COMPILES WITH A BAD SETTING"),
        "{text}"
    );
}

#[test]
fn bad_setting_is_counted_even_where_the_cache_dir_is_unusable() {
    let mut env = Env::new("fh-badsetting-nodir");
    env.set("XDG_RUNTIME_DIR", env.dir.join("run").display().to_string());
    // The cache dir is a file: nothing can be counted there.
    std::fs::write(&env.cache, "not a directory").unwrap();
    env.dir.write(
        "m.c",
        "#include <stdio.h>\nint main(void) { puts(\"ran\"); return 0; }\n",
    );
    env.set("CACHEPOT_RECACHE", "perhaps");
    let out = env.cachepot(&["gcc", "-c", "m.c", "-o", "m.o"]);
    assert!(out.status.success());
    assert_eq!(s(&out.stderr), "");
    assert_eq!(run_program(&env.dir.path, &["m.o"]), "ran\n");
    env.extra_env.retain(|(k, _)| k != "CACHEPOT_RECACHE");
    let stats = env.stats();
    assert_eq!(stats["config_error"], 1, "{stats}");
    assert!(!stats["cache_dir_problem"].is_null(), "{stats}");
}

#[test]
fn bad_setting_on_a_terminal_is_said_once() {
    // `script` gives the compile a terminal for stderr; two compiles, one line.
    let mut env = Env::new("fh-badsetting-tty");
    env.set("XDG_RUNTIME_DIR", env.dir.join("run").display().to_string());
    env.set("CACHEPOT_DIRECT", "maybe");
    env.dir.write("m.c", "int main(void) { return 0; }\n");
    let one = format!("{} gcc -c m.c -o m.o", cachepot_bin().display());
    let out = env
        .cmd(require_tool("script"))
        .args(["-qec", &format!("{one}; {one}"), "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let text = s(&out.stdout);
    assert_eq!(
        text.matches("cachepot: warning: CACHEPOT_DIRECT=maybe").count(),
        1,
        "{text}"
    );
    assert!(env.dir.join("m.o").exists());
}
