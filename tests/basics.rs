//! The foundation, as a user runs it: `cachepot gcc -c …` twice gives a miss, then a hit with the
//! same bytes, output and status.
mod common;
use common::*;

#[test]
fn second_identical_compile_is_a_hit_with_identical_object() {
    let env = Env::new("basic");
    env.dir.write("a.c", "int f(void) { int unused; return 1; }\n");
    let first = env.ok(&["gcc", "-c", "a.c", "-o", "a.o", "-Wall"]);
    let obj1 = env.dir.read("a.o");
    std::fs::remove_file(env.dir.join("a.o")).unwrap();
    let second = env.ok(&["gcc", "-c", "a.c", "-o", "a.o", "-Wall"]);
    assert_eq!(env.dir.read("a.o"), obj1);
    assert_eq!(first.stderr, second.stderr);
    assert!(s(&second.stderr).contains("unused variable"));
    assert_eq!(env.stat("misses"), 1);
    assert_eq!(env.stat("hits"), 1);
}

/// Started with stdin and stdout closed (a daemon, `make >&-`), the cache must not open a file on
/// fd 0 or 1: the compiler it runs sees /dev/null there, as under any Rust program's start-up, and
/// the object is the compiler's, on a miss and on a hit.
#[test]
fn started_with_closed_standard_fds_compiles_and_hits() {
    let env = Env::new("closed-fds");
    env.dir.write("a.c", "int f(void) { return 2; }\n");
    let plain = std::process::Command::new("gcc")
        .args(["-c", "a.c", "-o", "plain.o"])
        .current_dir(&env.dir.path)
        .status()
        .unwrap();
    assert!(plain.success());
    let closed = |args: &[&str]| {
        let out = env
            .cmd("sh")
            .args(["-c", "exec \"$@\" <&- >&-", "sh"])
            .arg(cachepot_bin())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", s(&out.stderr));
    };
    for _ in 0..2 {
        let _ = std::fs::remove_file(env.dir.join("a.o"));
        closed(&["gcc", "-c", "a.c", "-o", "a.o"]);
        assert_eq!(env.dir.read("a.o"), env.dir.read("plain.o"));
    }
    assert_eq!(env.stat("misses"), 1);
    assert_eq!(env.stat("hits"), 1);
    // A call passed through (`sh` is no compiler the cache knows) execs with /dev/null on 0 and 1.
    closed(&["sh", "-c", "readlink /proc/$$/fd/0 /proc/$$/fd/1 | cat > fds.txt"]);
    assert_eq!(s(&env.dir.read("fds.txt")), "/dev/null\n/dev/null\n");
}
