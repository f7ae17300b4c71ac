//! Compilers are identified by content (identity.rs): the same compiler bytes installed afresh
//! (new inodes and mtimes, or another path) share entries; a changed compiler proper (cc1) behind
//! an unchanged driver misses; CACHEPOT_COMPILER_CHECK=mtime and string:<text> do what they say.
//! The "toolchain" is a private copy of Debian's gcc driver and cc1, which the driver finds
//! relative to itself (`bin/../lib/gcc/<triplet>/<version>/cc1`).
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn compile(env: &Env, driver: &Path) {
    env.ok(&[driver.to_str().unwrap(), "-O2", "-c", "a.c", "-o", "a.o"]);
}

#[test]
fn same_compiler_bytes_anywhere_share_entries() {
    let env = Env::new("identity");
    env.dir.write("a.c", "int f(int x) { return x * 3; }\n");
    let a = env.dir.join("machine-a");
    let driver = install_gcc(&a);
    compile(&env, &driver);
    compile(&env, &driver);
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1));

    // The same bytes installed afresh at the same path: new inodes, new mtimes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let driver = install_gcc(&a);
    compile(&env, &driver);
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 2), "{}", env.stats());

    // … and at another path.
    let driver_b = install_gcc(&env.dir.join("machine-b"));
    compile(&env, &driver_b);
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 3), "{}", env.stats());

    // The compiler proper changes behind an unchanged driver: a miss.
    let cc1 = Command::new(&driver_b).arg("-print-prog-name=cc1").output().unwrap();
    let cc1 = PathBuf::from(s(&cc1.stdout).trim());
    let mut bytes = std::fs::read(&cc1).unwrap();
    bytes.extend_from_slice(b"\0changed");
    std::fs::write(&cc1, bytes).unwrap();
    compile(&env, &driver_b);
    assert_eq!((env.stat("misses"), env.stat("hits")), (2, 3), "{}", env.stats());
}

#[test]
fn compiler_check_mtime_and_string() {
    let mut env = Env::new("identity-check");
    env.dir.write("a.c", "int f(int x) { return x * 5; }\n");
    let root = env.dir.join("tc");
    env.set("CACHEPOT_COMPILER_CHECK", "mtime");
    let driver = install_gcc(&root);
    compile(&env, &driver);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let driver = install_gcc(&root);
    compile(&env, &driver);
    assert_eq!(env.stat("misses"), 2, "mtime mode: a re-install misses");

    let mut env = Env::new("identity-string");
    env.dir.write("a.c", "int f(int x) { return x * 7; }\n");
    env.set("CACHEPOT_COMPILER_CHECK", "string:ci-image-42");
    let driver = install_gcc(&env.dir.join("one"));
    compile(&env, &driver);
    let driver = install_gcc(&env.dir.join("two"));
    compile(&env, &driver);
    assert_eq!(
        (env.stat("misses"), env.stat("hits")),
        (1, 1),
        "the user vouches for the identity"
    );
    let out = env.cachepot(&["--show-config"]);
    assert!(s(&out.stdout).contains("string:ci-image-42"), "{}", s(&out.stdout));

    env.set("CACHEPOT_COMPILER_CHECK", "sometimes");
    let out = env.cachepot(&["--show-config"]);
    assert!(!out.status.success());
    assert!(
        s(&out.stderr).contains("CACHEPOT_COMPILER_CHECK=sometimes: accepted: content, mtime, string:<text>"),
        "{}",
        s(&out.stderr)
    );
}

/// `-march=native` is keyed as what it means on this CPU: it hits on this machine, and the key
/// dump (CACHEPOT_DEBUG) shows the resolved CPU and features, not the word "native".
#[test]
fn march_native_is_resolved_in_the_key() {
    for compiler in ["gcc", "clang"] {
        require_tool(compiler);
        let mut env = Env::new(&format!("native-{compiler}"));
        env.set("CACHEPOT_DEBUG", "1");
        env.dir.write("a.c", "int f(int x) { return x * 9; }\n");
        for _ in 0..2 {
            env.ok(&[compiler, "-O2", "-march=native", "-c", "a.c", "-o", "a.o"]);
        }
        assert_eq!(
            (env.stat("misses"), env.stat("hits")),
            (1, 1),
            "{compiler}: {}",
            env.stats()
        );
        let dump = s(&env.dir.read("a.o.cachepot-key.txt"));
        let native = dump
            .lines()
            .skip_while(|l| !l.contains("native cpu"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!native.is_empty(), "{compiler}: no native cpu in the key dump:\n{dump}");
        let resolved = match compiler {
            "gcc" => native.contains("-march=") && !native.contains("-march=native"),
            _ => native.contains("-target-cpu ") && !native.contains("-target-cpu native"),
        };
        assert!(resolved, "{compiler}: the dump names the CPU:\n{native}");
        // Another -march is another key.
        env.ok(&[compiler, "-O2", "-march=x86-64", "-c", "a.c", "-o", "a.o"]);
        assert_eq!(env.stat("misses"), 2);
    }
}

/// rustc's `-C target-cpu=native` is keyed as the CPU and features it means here: a second
/// compile hits, another target-cpu misses.
#[test]
fn rustc_target_cpu_native_is_resolved() {
    let rustc = require_tool("rustc");
    let sysroot = Command::new(&rustc).arg("--print").arg("sysroot").output().unwrap();
    let sysroot = s(&sysroot.stdout).trim().to_string();
    let mut env = Env::new("native-rustc");
    // As cargo does: name the toolchain for rustup's proxy.
    env.set("RUSTUP_TOOLCHAIN", sysroot);
    env.dir.write("a.rs", "pub fn triple(x: u32) -> u32 { x * 3 }\n");
    std::fs::create_dir_all(env.dir.join("out")).unwrap();
    let args = |cpu: &str| {
        vec![
            "rustc".to_string(),
            "--crate-name".into(),
            "a".into(),
            "--crate-type".into(),
            "lib".into(),
            "--emit=link,metadata,dep-info".into(),
            "-C".into(),
            format!("target-cpu={cpu}"),
            "--out-dir".into(),
            "out".into(),
            "a.rs".into(),
        ]
    };
    for _ in 0..2 {
        let a = args("native");
        env.ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    }
    assert_eq!((env.stat("misses"), env.stat("hits")), (1, 1), "{}", env.stats());
    let a = args("x86-64");
    env.ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(env.stat("misses"), 2, "{}", env.stats());
}

/// A crate that reads a credential-named variable is compiled, never stored: rustc writes the
/// value into its dep-info, which an entry would carry to every reader of the cache.
#[test]
fn rustc_crate_reading_a_token_is_not_stored() {
    let rustc = require_tool("rustc");
    let sysroot = Command::new(&rustc).arg("--print").arg("sysroot").output().unwrap();
    let mut env = Env::new("rust-secret");
    env.set("RUSTUP_TOOLCHAIN", s(&sysroot.stdout).trim());
    env.set("MY_API_TOKEN", "hunter2-secret-value");
    env.dir.write(
        "a.rs",
        "pub fn token() -> Option<&'static str> { option_env!(\"MY_API_TOKEN\") }\n",
    );
    std::fs::create_dir_all(env.dir.join("out")).unwrap();
    let args = [
        "rustc",
        "--crate-name",
        "a",
        "--crate-type",
        "lib",
        "--emit=link,metadata,dep-info",
        "--out-dir",
        "out",
        "a.rs",
    ];
    env.ok(&args);
    env.ok(&args);
    let st = env.stats();
    assert_eq!((st["misses"].as_u64(), st["hits"].as_u64()), (Some(2), Some(0)), "{st}");
    assert_eq!(st["other"]["rust.secret_env_not_stored"], 2, "{st}");
    // The user's own dep-info still names it, as rustc wrote it.
    assert!(s(&env.dir.read("out/a.d")).contains("MY_API_TOKEN"));
}
