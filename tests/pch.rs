//! Precompiled headers (issue 14.2) as a new user meets them: a real CMake project with
//! `target_precompile_headers`, built clean twice through `CMAKE_CXX_COMPILER_LAUNCHER=cachepot`
//! with g++ and with clang++. Neither compiler makes a byte-reproducible PCH, so the users of a
//! PCH can only hit if its creation is cached and restored byte for byte.
mod common;
use common::*;

const SOURCES: [&str; 3] = ["a", "b", "c"];

fn project(env: &Env) {
    require_tool("cmake");
    env.dir.write(
        "src/CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.16)\nproject(p CXX)\n\
         add_executable(prog main.cpp a.cpp b.cpp c.cpp)\n\
         target_precompile_headers(prog PRIVATE <vector> <string> \"common.h\")\n",
    );
    // The sources use COMMON but never include common.h: it reaches them through the PCH only.
    env.dir.write(
        "src/common.h",
        "#pragma once\n#define COMMON 1\ninline int common() { return COMMON; }\n",
    );
    for f in SOURCES {
        env.dir.write(
            &format!("src/{f}.cpp"),
            format!("int {f}() {{ std::vector<int> v{{1, 2}}; return (int)v.size() + common(); }}\n"),
        );
    }
    env.dir.write(
        "src/main.cpp",
        "#include <cstdio>\nint a(); int b(); int c();\n\
         int main() { std::printf(\"%d %d\\n\", a() + b() + c(), COMMON); return 0; }\n",
    );
}

/// Configure and build from scratch in `build/`; returns the program's output.
fn clean_build(env: &Env, cxx: &str) -> String {
    let build = env.dir.join("build");
    let _ = std::fs::remove_dir_all(&build);
    std::fs::create_dir_all(&build).unwrap();
    let out = env
        .cmd("cmake")
        .current_dir(&build)
        .env("CXX", require_tool(cxx))
        .arg(format!("-DCMAKE_CXX_COMPILER_LAUNCHER={}", cachepot_bin().display()))
        .args(["-G", "Unix Makefiles", "../src"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", s(&out.stdout), s(&out.stderr));
    let out = env
        .cmd("cmake")
        .current_dir(&build)
        .args(["--build", ".", "--", "-j2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", s(&out.stdout), s(&out.stderr));
    let run = std::process::Command::new(build.join("prog")).output().unwrap();
    s(&run.stdout)
}

fn pch_file(env: &Env) -> Vec<u8> {
    let dir = env.dir.join("build/CMakeFiles/prog.dir");
    for name in ["cmake_pch.hxx.gch", "cmake_pch.hxx.pch"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            return b;
        }
    }
    panic!("no precompiled header in {}", dir.display());
}

fn two_clean_builds_hit_and_pch_only_header_change_misses(cxx: &str) {
    let env = Env::new(&format!("pch-{cxx}"));
    project(&env);
    let calls = SOURCES.len() as u64 + 2; // the PCH, three sources, main.cpp
    assert_eq!(clean_build(&env, cxx), "9 1\n");
    let first_pch = pch_file(&env);
    let st = env.stats();
    assert_eq!(st["misses"], calls, "{st}");
    assert_eq!(
        st["not_cacheable_reasons"]["precompiled_header"].as_u64().unwrap_or(0),
        0,
        "{st}"
    );

    // A clean build again: the same PCH bytes from the cache, and every user of it hits.
    assert_eq!(clean_build(&env, cxx), "9 1\n");
    assert_eq!(pch_file(&env), first_pch);
    let st = env.stats();
    assert_eq!(st["hits"], calls, "{st}");
    assert_eq!(st["misses"], calls, "{st}");

    // common.h reaches the sources only through the PCH: changing it must still miss, and the
    // program must show the new value.
    env.dir.write(
        "src/common.h",
        "#pragma once\n#define COMMON 2\ninline int common() { return COMMON; }\n",
    );
    assert_eq!(clean_build(&env, cxx), "12 2\n");
    let st = env.stats();
    assert_eq!(st["hits"], calls, "{st}");
    assert_eq!(st["misses"], 2 * calls, "{st}");
}

#[test]
fn gxx_pch_cached_and_its_users_hit() {
    two_clean_builds_hit_and_pch_only_header_change_misses("g++");
}

#[test]
fn clangxx_pch_cached_and_its_users_hit() {
    two_clean_builds_hit_and_pch_only_header_change_misses("clang++");
}

#[test]
fn gxx_incremental_rebuild_back_to_a_seen_header_hits() {
    // The previous build's .gch beside cmake_pch.hxx is no input of making the next one (gcc does
    // not read it then): going back to a header seen before hits, PCH and users alike.
    let env = Env::new("pch-incremental");
    project(&env);
    let calls = SOURCES.len() as u64 + 2;
    assert_eq!(clean_build(&env, "g++"), "9 1\n");
    let build = env.dir.join("build");
    let make = || {
        let out = env.cmd("make").current_dir(&build).output().unwrap();
        assert!(out.status.success(), "{}{}", s(&out.stdout), s(&out.stderr));
        s(&std::process::Command::new(build.join("prog")).output().unwrap().stdout)
    };
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.dir.write(
        "src/common.h",
        "#pragma once\n#define COMMON 2\ninline int common() { return COMMON; }\n",
    );
    assert_eq!(make(), "12 2\n");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.dir.write(
        "src/common.h",
        "#pragma once\n#define COMMON 1\ninline int common() { return COMMON; }\n",
    );
    assert_eq!(make(), "9 1\n");
    let st = env.stats();
    assert_eq!(st["misses"], 2 * calls, "{st}");
    assert_eq!(st["hits"], calls, "{st}");
}
