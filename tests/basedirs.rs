//! Base directories (CACHEPOT_BASEDIRS, and the old sides of the user's own -f*-prefix-map):
//! two checkouts or build dirs at other absolute paths share entries; a hit names its own paths
//! in dependency files; an output that still embeds a base's absolute path is never handed to
//! another location; without bases nothing is shared by accident.
mod common;
mod remote_support;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small project as CMake lays one out: absolute paths everywhere, a header in the source tree
/// and a generated one in the build dir.
fn checkout(root: &Path) -> PathBuf {
    let w = |rel: &str, text: &str| {
        common::write_under(root, rel, text);
    };
    w("include/lib.h", "int twice(int);\n#define GREETING \"hello\"\n");
    w(
        "src/lib.c",
        "#include \"lib.h\"\n#include \"config.h\"\nint twice(int x) { return x * FACTOR; }\n",
    );
    w(
        "src/main.c",
        "#include <stdio.h>\n#include \"lib.h\"\nint main(void) { printf(\"%s %d\\n\", GREETING, twice(21)); return 0; }\n",
    );
    w("build/gen/config.h", "#define FACTOR 2\n");
    root.join("build")
}

fn compile(env: &Env, root: &Path, name: &str, extra: &[&str]) -> std::process::Output {
    compile_with(env, root, "gcc", name, extra)
}

fn compile_with(env: &Env, root: &Path, gcc: &str, name: &str, extra: &[&str]) -> std::process::Output {
    let build = root.join("build");
    let mut args: Vec<String> = vec![
        gcc.into(),
        "-g".into(),
        "-O1".into(),
        format!("-I{}", root.join("include").display()),
        format!("-I{}", build.join("gen").display()),
        "-MD".into(),
        "-MF".into(),
        format!("{name}.d"),
        "-c".into(),
        root.join("src").join(format!("{name}.c")).display().to_string(),
        "-o".into(),
        build.join(format!("{name}.o")).display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = env
        .cmd(cachepot_bin())
        .current_dir(&build)
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", s(&out.stderr));
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn two_checkouts_share_with_basedirs() {
    let env = Env::new("basedirs");
    let a = env.dir.join("machine-a/work/proj");
    let b = env.dir.join("machine-b/home/someone/proj");
    checkout(&a);
    checkout(&b);
    let with_base = |root: &Path| {
        let mut e = Env::new("unused");
        e.cache = env.cache.clone();
        e.set("CACHEPOT_BASEDIRS", root.to_str().unwrap());
        e
    };
    let ea = with_base(&a);
    for name in ["lib", "main"] {
        compile(&ea, &a, name, &[]);
    }
    assert_eq!(env.stat("misses"), 2);
    let eb = with_base(&b);
    for name in ["lib", "main"] {
        compile(&eb, &b, name, &[]);
    }
    let st = env.stats();
    assert_eq!((st["misses"].as_u64(), st["hits"].as_u64()), (Some(2), Some(2)), "{st}");
    for name in ["lib", "main"] {
        let obj = std::fs::read(b.join(format!("build/{name}.o"))).unwrap();
        let a_path = a.to_str().unwrap();
        assert!(!contains(&obj, a_path), "{name}.o names machine A's path");
        // The same bytes as B's own compile with the same remapping.
        let plain = Command::new(require_tool("gcc"))
            .current_dir(b.join("build"))
            .args([
                "-g",
                "-O1",
                &format!("-I{}", b.join("include").display()),
                &format!("-I{}", b.join("build/gen").display()),
                "-c",
                b.join(format!("src/{name}.c")).to_str().unwrap(),
                "-o",
                "plain.o",
                // What cachepot passes: the base as seen from the build dir, then the build dir.
                &format!("-ffile-prefix-map={}=..", b.canonicalize().unwrap().display()),
                &format!(
                    "-ffile-prefix-map={}=.",
                    b.join("build").canonicalize().unwrap().display()
                ),
            ])
            .status()
            .unwrap();
        assert!(plain.success());
        assert!(
            obj == std::fs::read(b.join("build/plain.o")).unwrap(),
            "{name}.o differs from B's own compile"
        );
        // The dependency file names B's files.
        let d = std::fs::read(b.join(format!("build/{name}.d"))).unwrap();
        assert!(!contains(&d, a_path), "{}", s(&d));
        assert!(
            contains(&d, b.canonicalize().unwrap().join("include/lib.h").to_str().unwrap()),
            "{}",
            s(&d)
        );
    }
    // The program B links from its hits runs right.
    let exe = b.join("build/app");
    let st = Command::new(require_tool("gcc"))
        .args([b.join("build/lib.o"), b.join("build/main.o")])
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(s(&Command::new(&exe).output().unwrap().stdout), "hello 42\n");
}

#[test]
fn without_basedirs_another_checkout_misses() {
    let env = Env::new("no-basedirs");
    let a = env.dir.join("a/proj");
    let b = env.dir.join("b/proj");
    checkout(&a);
    checkout(&b);
    compile(&env, &a, "lib", &[]);
    compile(&env, &b, "lib", &[]);
    assert_eq!((env.stat("misses"), env.stat("hits")), (2, 0));
}

/// Two build dirs that both map their own path away with -fdebug-prefix-map share entries with
/// no setting at all; a source whose object still embeds the build dir's path (`__FILE__`, which
/// that flag does not remap) is stored for its location only.
#[test]
fn own_prefix_map_shares_and_embedded_paths_stay_home() {
    let env = Env::new("prefix-map");
    let a = env.dir.join("a/proj");
    let b = env.dir.join("b/proj");
    for root in [&a, &b] {
        checkout(root);
        std::fs::write(root.join("build/gen/where.c"), "const char *where = __FILE__;\n").unwrap();
    }
    // The source tree is shared (one absolute path); each build dir maps itself away.
    let src = a.clone();
    let build = |bd: &Path, file: &str| {
        let out = env
            .cmd(cachepot_bin())
            .current_dir(bd)
            .args([
                "gcc",
                "-g",
                &format!("-fdebug-prefix-map={}=.", bd.display()),
                &format!("-I{}", src.join("include").display()),
                &format!("-I{}", bd.join("gen").display()),
                "-c",
                file,
                "-o",
                &bd.join("out.o").display().to_string(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
        std::fs::read(bd.join("out.o")).unwrap()
    };
    let lib = src.join("src/lib.c").display().to_string();
    build(&a.join("build"), &lib);
    build(&b.join("build"), &lib);
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1), "{}", env.stats());

    let wa = a.join("build/gen/where.c").display().to_string();
    let wb = b.join("build/gen/where.c").display().to_string();
    let oa = build(&a.join("build"), &wa);
    assert!(contains(&oa, &wa), "__FILE__ names A's build dir");
    let ob = build(&b.join("build"), &wb);
    assert!(
        contains(&ob, &wb) && !contains(&ob, &wa),
        "B's object names B's path, never A's"
    );
    let st = env.stats();
    assert_eq!((st["misses"].as_u64(), st["hits"].as_u64()), (Some(3), Some(1)), "{st}");
    assert_eq!(st["other"]["stored_location_bound"], 2, "{st}");
    // … and each location still hits its own.
    build(&a.join("build"), &wa);
    assert_eq!(env.stat("hits"), 2);
}

/// A real CMake + Ninja project (Debug, a header generated into the build dir) built in two build
/// dirs of one checkout: with the checkout as base directory, the second build dir hits every
/// compile, and its program runs.
#[test]
fn cmake_ninja_second_build_dir_hits_everything() {
    let cmake = require_tool("cmake");
    require_tool("ninja");
    let mut env = Env::new("basedirs-cmake");
    let root = env.dir.join("proj");
    let w = |rel: &str, text: &str| {
        common::write_under(&root, rel, text);
    };
    w(
        "CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.16)\nproject(demo C)\n\
         set(FACTOR 3)\nconfigure_file(config.h.in gen/config.h)\n\
         add_executable(app src/main.c src/a.c src/b.c src/c.c)\n\
         target_include_directories(app PRIVATE include ${CMAKE_CURRENT_BINARY_DIR}/gen)\n",
    );
    w("config.h.in", "#define FACTOR @FACTOR@\n");
    w("include/demo.h", "int a(int); int b(int); int c(int);\n");
    for (n, body) in [("a", "x + 1"), ("b", "x * 2"), ("c", "x - 3")] {
        w(
            &format!("src/{n}.c"),
            &format!("#include \"demo.h\"\n#include \"config.h\"\nint {n}(int x) {{ return ({body}) * FACTOR; }}\n"),
        );
    }
    w(
        "src/main.c",
        "#include <stdio.h>\n#include \"demo.h\"\nint main(void) { printf(\"%d\\n\", a(1) + b(2) + c(3)); return 0; }\n",
    );
    env.set("CACHEPOT_BASEDIRS", root.to_str().unwrap());
    for dir in ["build-one", "build-two"] {
        let bd = root.join(dir);
        let conf = env
            .cmd(&cmake)
            .args(["-G", "Ninja", "-DCMAKE_BUILD_TYPE=Debug"])
            .arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={}", cachepot_bin().display()))
            .arg("-S")
            .arg(&root)
            .arg("-B")
            .arg(&bd)
            .output()
            .unwrap();
        assert!(conf.status.success(), "{}", s(&conf.stderr));
        let build = env.cmd(&cmake).arg("--build").arg(&bd).output().unwrap();
        assert!(build.status.success(), "{}{}", s(&build.stdout), s(&build.stderr));
        let run = Command::new(bd.join("app")).output().unwrap();
        assert_eq!(s(&run.stdout), "18\n", "{dir}");
    }
    let st = env.stats();
    assert_eq!((st["misses"].as_u64(), st["hits"].as_u64()), (Some(4), Some(4)), "{st}");
}

/// A base that is the common parent of two checkouts: a hit in the second names the second's
/// headers in its dependency file, never the first's (the path after the base is the checkout's).
#[test]
fn common_parent_base_hit_names_its_own_checkout() {
    let mut env = Env::new("basedirs-parent");
    let parent = env.dir.join("ws");
    for co in ["one", "two"] {
        std::fs::create_dir_all(parent.join(co).join("inc")).unwrap();
        std::fs::write(
            parent.join(co).join("a.c"),
            "#include \"h.h\"\nint f(void) { return X; }\n",
        )
        .unwrap();
        std::fs::write(parent.join(co).join("inc/h.h"), "#define X 3\n").unwrap();
    }
    env.set("CACHEPOT_BASEDIRS", parent.to_str().unwrap());
    for co in ["one", "two"] {
        let dir = parent.join(co);
        let out = env
            .cmd(cachepot_bin())
            .current_dir(&dir)
            .args([
                "gcc",
                "-c",
                &format!("-I{}", dir.join("inc").display()),
                "a.c",
                "-MD",
                "-MF",
                "a.d",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
    }
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1), "{}", env.stats());
    let d = s(&std::fs::read(parent.join("two/a.d")).unwrap());
    let own = parent.canonicalize().unwrap().join("two/inc/h.h");
    assert!(d.contains(own.to_str().unwrap()), "{d}");
    assert!(!d.contains("/one/"), "{d}");
}

/// An autoconf project (default CFLAGS "-g -O2", config.h generated in the build dir) configured
/// in two VPATH build dirs: with the checkout as base directory, every object of the second hits.
#[test]
fn autoconf_second_build_dir_hits_everything() {
    let autoconf = require_tool("autoconf");
    require_tool("make");
    let mut env = Env::new("basedirs-autoconf");
    let root = env.dir.join("proj");
    let w = |rel: &str, text: &str| {
        common::write_under(&root, rel, text);
    };
    w(
        "configure.ac",
        "AC_INIT([demo], [1.0])\nAC_PROG_CC\nAC_CONFIG_HEADERS([config.h])\nAC_CONFIG_FILES([Makefile])\nAC_OUTPUT\n",
    );
    w(
        "Makefile.in",
        "srcdir = @srcdir@\nVPATH = @srcdir@\nCC = @CC@\nCFLAGS = @CFLAGS@\nOBJS = a.o b.o main.o\n\
         prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\
         %.o: %.c\n\t$(CC) $(CFLAGS) -DHAVE_CONFIG_H -I. -I$(srcdir) -c $< -o $@\n",
    );
    w("config.h.in", "#undef PACKAGE_NAME\n#undef PACKAGE_VERSION\n");
    w("demo.h", "int a(void); int b(void);\n");
    w(
        "a.c",
        "#include \"config.h\"\n#include \"demo.h\"\nint a(void) { return 20; }\n",
    );
    w(
        "b.c",
        "#include \"config.h\"\n#include \"demo.h\"\nint b(void) { return 22; }\n",
    );
    w(
        "main.c",
        "#include <stdio.h>\n#include \"config.h\"\n#include \"demo.h\"\nint main(void) { printf(\"%s %d\\n\", PACKAGE_NAME, a() + b()); return 0; }\n",
    );
    let out = env.cmd(&autoconf).current_dir(&root).output().unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    env.set("CACHEPOT_BASEDIRS", root.to_str().unwrap());
    for (i, dir) in ["build-one", "build-two"].iter().enumerate() {
        let bd = root.join(dir);
        std::fs::create_dir_all(&bd).unwrap();
        let conf = env
            .cmd("../configure")
            .current_dir(&bd)
            .env("CC", format!("{} gcc", cachepot_bin().display()))
            .output()
            .unwrap();
        assert!(conf.status.success(), "{}{}", s(&conf.stdout), s(&conf.stderr));
        env.ok(&["--zero-stats"]);
        let make = env.cmd("make").current_dir(&bd).output().unwrap();
        assert!(make.status.success(), "{}{}", s(&make.stdout), s(&make.stderr));
        let run = Command::new(bd.join("prog")).output().unwrap();
        assert_eq!(s(&run.stdout), "demo 42\n");
        let st = env.stats();
        let expect = if i == 0 { (Some(3), Some(0)) } else { (Some(0), Some(3)) };
        assert_eq!((st["misses"].as_u64(), st["hits"].as_u64()), expect, "{dir}: {st}");
    }
}

/// Machine A fills a shared Redis; machine B — another checkout path, its own install of the same
/// gcc bytes (another path, new mtimes) and an empty cache dir — gets every object from it as a
/// direct hit, byte for byte, with its own paths in the dependency files, and the program runs.
#[test]
fn second_machine_gets_every_object_from_redis() {
    let server = remote_support::redis(&[]);
    let url = format!("redis://127.0.0.1:{}/0", server.port);
    let machine = |name: &str| {
        let mut e = Env::new(name);
        let root = e.dir.join("src/proj");
        checkout(&root);
        let gcc = install_gcc(&e.dir.join("toolchain"));
        e.set("CACHEPOT_REDIS", &url);
        e.set("CACHEPOT_BASEDIRS", root.to_str().unwrap());
        (e, root, gcc)
    };
    let (ea, a, gcc_a) = machine("second-a");
    for name in ["lib", "main"] {
        compile_with(&ea, &a, gcc_a.to_str().unwrap(), name, &[]);
    }
    assert_eq!((ea.stat("misses"), ea.stat("hits")), (2, 0));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (eb, b, gcc_b) = machine("second-b");
    for name in ["lib", "main"] {
        compile_with(&eb, &b, gcc_b.to_str().unwrap(), name, &[]);
    }
    let stats = eb.stats();
    assert_eq!(stats["hits_direct"].as_u64(), Some(2), "{stats}");
    assert_eq!(stats["misses"].as_u64(), Some(0), "{stats}");
    for name in ["lib.o", "main.o"] {
        let (oa, ob) = (
            std::fs::read(a.join("build").join(name)).unwrap(),
            std::fs::read(b.join("build").join(name)).unwrap(),
        );
        assert!(oa == ob, "{name}: B's object is not A's");
        assert!(!contains(&ob, a.to_str().unwrap()), "{name} names A's checkout");
    }
    let d = std::fs::read_to_string(b.join("build/lib.d")).unwrap();
    assert!(d.contains(&format!("{}/include/lib.h", b.display())), "{d}");
    assert!(!d.contains(a.to_str().unwrap()), "{d}");
    let build = b.join("build");
    let st = Command::new(require_tool("gcc"))
        .current_dir(&build)
        .args(["lib.o", "main.o", "-o", "prog"])
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(build.join("prog")).output().unwrap();
    assert_eq!(s(&out.stdout), "hello 42\n");
}
