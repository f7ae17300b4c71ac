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
