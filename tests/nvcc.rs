//! nvcc through `cachepot nvcc …`, with NVIDIA's real compiler (CUDA 13 from the Python package
//! index, installed by .ci/setup-nvcc.sh, which puts its bin/ on PATH) and Debian's gcc as the host
//! compiler. No GPU is needed to compile: these tests check objects, dependency files and
//! `--show-stats`, not kernels running.
mod common;
use common::*;

const GENCODE: [&str; 4] = [
    "-gencode",
    "arch=compute_75,code=sm_75",
    "-gencode",
    "arch=compute_90,code=sm_90",
];

fn project(env: &Env) {
    require_tool("nvcc");
    env.dir.write("inc/scale.h", "#define SCALE 3\n");
    // Read only by the device passes, and only by the sm_90 one.
    env.dir.write("inc/dev90.h", "#define DEV90_BONUS 1\n");
    env.dir.write(
        "kernel.cu",
        r#"#include "scale.h"
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#include "dev90.h"
#else
#define DEV90_BONUS 0
#endif
__global__ void scale(int *a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) a[i] = a[i] * SCALE + DEV90_BONUS;
}
void launch(int *d, int n) { scale<<<(n + 63) / 64, 64>>>(d, n); }
"#,
    );
}

fn compile(env: &Env, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["nvcc", "-c", "kernel.cu", "-Iinc", "-o", "kernel.o"];
    args.extend_from_slice(&GENCODE);
    args.extend_from_slice(extra);
    env.ok(&args)
}

#[test]
fn miss_then_hit_with_byte_identical_object() {
    let env = Env::new("nvcc-hit");
    project(&env);
    compile(&env, &[]);
    let first = env.dir.read("kernel.o");
    std::fs::remove_file(env.dir.join("kernel.o")).unwrap();
    compile(&env, &[]);
    assert_eq!(env.dir.read("kernel.o"), first, "a hit restores the object of the miss");
    assert_eq!(env.stat("misses"), 1);
    assert_eq!(env.stat("hits_direct"), 1);
    // nvcc itself does not reproduce its objects (they embed a random temp-file name): the hit
    // is the cache's bytes, not a recompile that happens to agree.
    let plain = std::process::Command::new(require_tool("nvcc"))
        .current_dir(&env.dir.path)
        .args(["-c", "kernel.cu", "-Iinc", "-o", "plain.o"])
        .args(GENCODE)
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", s(&plain.stderr));
}

#[test]
fn gencode_change_misses() {
    let env = Env::new("nvcc-gencode");
    project(&env);
    compile(&env, &[]);
    let both = env.dir.read("kernel.o");
    env.ok(&[
        "nvcc",
        "-c",
        "kernel.cu",
        "-Iinc",
        "-o",
        "kernel.o",
        "-gencode",
        "arch=compute_75,code=sm_75",
    ]);
    assert_eq!(env.stat("misses"), 2);
    assert_ne!(env.dir.read("kernel.o"), both);
    // -lineinfo and --threads are code-generation options too.
    compile(&env, &["-lineinfo"]);
    assert_eq!(env.stat("misses"), 3);
    assert_eq!(env.stat("hits"), 0);
}

#[test]
fn header_changes_miss_including_one_only_a_device_pass_reads() {
    let env = Env::new("nvcc-header");
    project(&env);
    compile(&env, &[]);
    env.dir.write("inc/scale.h", "#define SCALE 4\n");
    compile(&env, &[]);
    assert_eq!(env.stat("misses"), 2);
    // dev90.h is read by the sm_90 device pass only; nvcc's dependency output still names it.
    env.dir.write("inc/dev90.h", "#define DEV90_BONUS 2\n");
    compile(&env, &[]);
    assert_eq!(env.stat("misses"), 3);
    assert_eq!(env.stat("hits"), 0);
    // Back to a state seen before: a hit.
    env.dir.write("inc/dev90.h", "#define DEV90_BONUS 1\n");
    compile(&env, &[]);
    assert_eq!(env.stat("hits_direct"), 1);
}

#[test]
fn dependency_files_are_restored() {
    let env = Env::new("nvcc-dep");
    project(&env);
    std::fs::create_dir_all(env.dir.join("deps")).unwrap();
    compile(&env, &["-MD", "-MF", "deps/kernel.d"]);
    let dep = env.dir.read("deps/kernel.d");
    let text = s(&dep);
    assert!(text.starts_with("kernel.o : kernel.cu"), "{text}");
    assert!(text.contains("inc/dev90.h"), "{text}");
    std::fs::remove_file(env.dir.join("deps/kernel.d")).unwrap();
    compile(&env, &["-MD", "-MF", "deps/kernel.d"]);
    assert_eq!(env.stat("hits_direct"), 1);
    assert_eq!(env.dir.read("deps/kernel.d"), dep);
    // -MD without -MF: beside the object.
    compile(&env, &["-MD"]);
    assert!(env.dir.join("kernel.d").is_file());
}

#[test]
fn host_compiler_is_keyed_by_content() {
    let env = Env::new("nvcc-ccbin");
    project(&env);
    compile(&env, &["-ccbin", "gcc"]);
    // The same gcc named by its path: the spelling is not keyed, the program is.
    let gcc = require_tool("gcc");
    compile(&env, &["-ccbin", gcc.to_str().unwrap()]);
    assert_eq!(env.stat("hits_direct"), 1);
    // g++ is another program: a miss.
    compile(&env, &["-ccbin", "g++"]);
    assert_eq!(env.stat("misses"), 2);
}

#[test]
fn link_run_and_preprocess_pass_through() {
    let env = Env::new("nvcc-link");
    project(&env);
    env.dir.write(
        "main.cu",
        "#include <cstdio>\nvoid launch(int *, int);\nint main() { std::printf(\"linked\\n\"); return 0; }\n",
    );
    compile(&env, &[]);
    env.ok(&["nvcc", "-c", "main.cu", "-o", "main.o", "-arch=sm_75"]);
    env.ok(&["nvcc", "kernel.o", "main.o", "-o", "prog"]);
    let run = std::process::Command::new(env.dir.join("prog")).output().unwrap();
    assert_eq!(s(&run.stdout), "linked\n");
    let pre = env.ok(&["nvcc", "-E", "kernel.cu", "-Iinc", "-arch=sm_75"]);
    assert!(s(&pre.stdout).contains("scale"));
    assert_eq!(env.not_cacheable("linking"), 1);
    assert_eq!(env.not_cacheable("preprocess_only"), 1);
    // -MMD (system headers left out) would need preprocessor mode, which nvcc lacks.
    compile(&env, &["-MMD"]);
    assert_eq!(
        env.not_cacheable_detail("needs preprocessor mode, which this compiler lacks"),
        1
    );
}

#[test]
fn nvcc_append_flags_are_keyed() {
    let mut env = Env::new("nvcc-append");
    project(&env);
    compile(&env, &[]);
    env.set("NVCC_APPEND_FLAGS", "-DSCALE_UNUSED=1");
    compile(&env, &[]);
    assert_eq!(env.stat("misses"), 2);
    compile(&env, &[]);
    assert_eq!(env.stat("hits_direct"), 1);
}

#[test]
fn lineinfo_keys_the_directory_it_records() {
    // -lineinfo writes the source's absolute path into the device code: another directory must
    // not get this one's object. Without it, the object does not depend on the directory.
    let env = Env::new("nvcc-lineinfo");
    project(&env);
    for sub in ["one", "two"] {
        for f in ["kernel.cu", "inc/scale.h", "inc/dev90.h"] {
            std::fs::create_dir_all(env.dir.join(sub).join("inc")).unwrap();
            std::fs::copy(env.dir.join(f), env.dir.join(sub).join(f)).unwrap();
        }
    }
    let run = |sub: &str, extra: &[&str]| {
        let mut args = vec!["nvcc", "-c", "kernel.cu", "-Iinc", "-o", "kernel.o", "-arch=sm_75"];
        args.extend_from_slice(extra);
        let out = env
            .cmd(cachepot_bin())
            .current_dir(env.dir.join(sub))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
    };
    run("one", &["-lineinfo"]);
    run("two", &["-lineinfo"]);
    assert_eq!(env.stat("misses"), 2);
    assert_eq!(env.stat("hits"), 0);
    run("one", &[]);
    run("two", &[]);
    assert_eq!(env.stat("hits_direct"), 1);
}

#[test]
fn lineinfo_under_a_base_directory_still_keys_the_directory() {
    // Base directories make keys relative, but nvcc cannot remap what cicc records: two checkouts
    // under one base must not share a -lineinfo object.
    let mut env = Env::new("nvcc-lineinfo-base");
    project(&env);
    for sub in ["one", "two"] {
        std::fs::create_dir_all(env.dir.join(sub).join("inc")).unwrap();
        for f in ["kernel.cu", "inc/scale.h", "inc/dev90.h"] {
            std::fs::copy(env.dir.join(f), env.dir.join(sub).join(f)).unwrap();
        }
    }
    let base = env.dir.path.to_str().unwrap().to_string();
    env.set("CACHEPOT_BASEDIRS", base);
    for sub in ["one", "two"] {
        let args = [
            "nvcc",
            "-c",
            "kernel.cu",
            "-Iinc",
            "-o",
            "kernel.o",
            "-arch=sm_75",
            "-lineinfo",
        ];
        let out = env
            .cmd(cachepot_bin())
            .current_dir(env.dir.join(sub))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
    }
    assert_eq!(env.stat("hits"), 0);
    assert_eq!(env.stat("misses"), 2);
}
