//! Crates that link, through the cache (issue 15): proc-macros, bins, build scripts, test
//! harnesses and cdylibs, with real cargo and real crates.io crates (serde_derive, thiserror,
//! clap with derive, cc), and direct rustc calls for what changes a link: a native library, a
//! linker script, a `-C link-arg`, the linker program.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// `macros` (a proc-macro on syn and quote), `native` (a build script compiling C with cc), `cdy`
/// (a cdylib), and two bins: `app` (serde derive, serde_json, thiserror, clap derive, macros,
/// native; unit tests and an integration test) and `tool` (clap derive, macros).
fn write_workspace(dir: &Path) {
    let w = |rel: &str, text: &str| {
        common::write_under(dir, rel, text);
    };
    w(
        "Cargo.toml",
        "[workspace]\nmembers = [\"macros\", \"native\", \"cdy\", \"app\", \"tool\"]\nresolver = \"2\"\n",
    );
    w("Cargo.lock", include_str!("data/rust-linked.lock"));
    w(
        "macros/Cargo.toml",
        "[package]\nname = \"macros\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\nproc-macro = true\n\n\
         [dependencies]\nsyn = { version = \"2\", default-features = false, features = [\"derive\", \"parsing\", \
         \"printing\", \"proc-macro\"] }\nquote = \"1\"\n",
    );
    w("macros/src/lib.rs", &macro_source("v1"));
    w(
        "native/Cargo.toml",
        "[package]\nname = \"native\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[build-dependencies]\ncc = \"1\"\n",
    );
    w(
        "native/build.rs",
        "fn main() {\n    cc::Build::new().file(\"c/mul.c\").compile(\"mul\");\n    \
         println!(\"cargo:rerun-if-changed=c/mul.c\");\n}\n",
    );
    w("native/c/mul.c", "int native_mul(int a, int b) { return a * b; }\n");
    w(
        "native/src/lib.rs",
        "extern \"C\" {\n    fn native_mul(a: i32, b: i32) -> i32;\n}\n\npub fn mul(a: i32, b: i32) -> i32 {\n    \
         unsafe { native_mul(a, b) }\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn six_sevens() {\n        \
         assert_eq!(super::mul(6, 7), 42);\n    }\n}\n",
    );
    w(
        "cdy/Cargo.toml",
        "[package]\nname = \"cdy\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n",
    );
    w(
        "cdy/src/lib.rs",
        "#[no_mangle]\npub extern \"C\" fn cdy_answer() -> i32 {\n    42\n}\n",
    );
    w(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         serde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\nthiserror = \"2\"\n\
         clap = { version = \"4\", default-features = false, features = [\"std\", \"derive\", \"help\"] }\n\
         macros = { path = \"../macros\" }\nnative = { path = \"../native\" }\n",
    );
    w(
        "app/src/main.rs",
        r#"use clap::Parser;
use macros::Describe;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 6)]
    a: i32,
    #[arg(long, default_value_t = 7)]
    b: i32,
}

#[derive(Serialize, Deserialize, Describe)]
struct Product {
    a: i32,
    b: i32,
    product: i32,
}

#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("negative input {0}")]
    Negative(i32),
}

fn product(a: i32, b: i32) -> Result<Product, AppError> {
    if a < 0 {
        return Err(AppError::Negative(a));
    }
    Ok(Product { a, b, product: native::mul(a, b) })
}

fn main() {
    let args = Args::parse();
    match product(args.a, args.b) {
        Ok(p) => println!("{} {}", Product::describe(), serde_json::to_string(&p).unwrap()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn negative_is_an_error() {
        assert_eq!(super::product(-1, 2).err().unwrap().to_string(), "negative input -1");
    }

    #[test]
    fn round_trips() {
        let p = super::product(2, 3).unwrap();
        let back: super::Product = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.product, 6);
    }
}
"#,
    );
    w(
        "app/tests/cli.rs",
        "#[test]\nfn prints_the_product() {\n    let out = std::process::Command::new(env!(\"CARGO_BIN_EXE_app\"))\n        \
         .args([\"--a\", \"3\", \"--b\", \"5\"]).output().unwrap();\n    \
         assert!(String::from_utf8_lossy(&out.stdout).ends_with(\"\\\"product\\\":15}\\n\"));\n}\n",
    );
    w(
        "tool/Cargo.toml",
        "[package]\nname = \"tool\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         clap = { version = \"4\", default-features = false, features = [\"std\", \"derive\", \"help\"] }\n\
         macros = { path = \"../macros\" }\n",
    );
    w(
        "tool/src/main.rs",
        "use clap::Parser;\nuse macros::Describe;\n\n#[derive(Parser)]\nstruct Args {\n    #[arg(long)]\n    \
         name: String,\n}\n\n#[derive(Describe)]\nstruct Tool;\n\nfn main() {\n    let args = Args::parse();\n    \
         println!(\"{} says hello to {}\", Tool::describe(), args.name);\n}\n",
    );
    // A C program that loads the cdylib.
    w(
        "use_cdy.c",
        "#include <stdio.h>\nint cdy_answer(void);\nint main(void) { printf(\"%d\\n\", cdy_answer()); return 0; }\n",
    );
}

/// The proc-macro: `#[derive(Describe)]` gives `T::describe()`, "<T> <version>".
fn macro_source(version: &str) -> String {
    format!(
        "use proc_macro::TokenStream;\nuse quote::quote;\n\n#[proc_macro_derive(Describe)]\n\
         pub fn describe(input: TokenStream) -> TokenStream {{\n    \
         let ast: syn::DeriveInput = syn::parse(input).unwrap();\n    let name = &ast.ident;\n    \
         let text = format!(\"{{}} {version}\", name);\n    \
         quote! {{ impl #name {{ pub fn describe() -> &'static str {{ #text }} }} }}.into()\n}}\n"
    )
}

/// rustc called outside cargo and rustup's proxy: name the toolchain as cargo would.
fn name_the_toolchain(env: &mut Env) {
    env.set(
        "RUSTUP_TOOLCHAIN",
        std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".to_string()),
    );
}

/// A cargo command in `ws` with the outer cargo's variables removed (these tests run under
/// cargo), incremental compilation off, and cachepot as the wrapper when `cached`.
fn cargo(env: &Env, ws: &Path, cached: bool, args: &[&str]) -> Output {
    let mut c = env.cmd(require_tool("cargo"));
    c.current_dir(ws);
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k.starts_with("RUSTC") || k.starts_with("RUSTFLAGS") {
            c.env_remove(&k);
        }
    }
    c.env("CARGO_INCREMENTAL", "0");
    c.env("CACHEPOT_ERROR_LOG", env.dir.join("cachepot.log"));
    if cached {
        c.env("RUSTC_WRAPPER", cachepot_bin());
    }
    let out = c.args(args).output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\nstdout: {}\nstderr: {}",
        s(&out.stdout),
        s(&out.stderr)
    );
    out
}

fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let program = program.as_ref();
    let out = Command::new(program).args(args).output().expect("run a built program");
    assert!(out.status.success(), "{program:?}: {}", s(&out.stderr));
    s(&out.stdout)
}

/// Both bins and the cdylib (through a C program linked against it) give the right answers.
fn check_programs(env: &Env, target: &Path, version: &str) {
    let debug = target.join("debug");
    assert_eq!(
        run(debug.join("app"), &[]),
        format!("Product {version} {{\"a\":6,\"b\":7,\"product\":42}}\n")
    );
    assert_eq!(
        run(debug.join("tool"), &["--name", "you"]),
        format!("Tool {version} says hello to you\n")
    );
    let exe = target.join("use_cdy");
    let out = Command::new(require_tool("cc"))
        .arg(env.dir.join("ws/use_cdy.c"))
        .arg("-L")
        .arg(&debug)
        .args(["-lcdy", "-o"])
        .arg(&exe)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let out = Command::new(&exe).env("LD_LIBRARY_PATH", &debug).output().unwrap();
    assert_eq!(s(&out.stdout), "42\n");
}

/// Every executable and shared object cargo leaves in `target/debug` and its `deps`, by name.
fn linked_files(target: &Path) -> BTreeMap<String, Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let mut m = BTreeMap::new();
    for dir in [target.join("debug"), target.join("debug/deps")] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let meta = e.metadata().unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if meta.is_file() && (meta.permissions().mode() & 0o111 != 0 || name.ends_with(".so")) {
                m.insert(name, std::fs::read(e.path()).unwrap());
            }
        }
    }
    m
}

/// The not-cacheable calls other than probes: cargo's of rustc (`-vV`, `--print`), and those the
/// build scripts of proc-macro2 and thiserror make, which compile a file meant to fail on stable.
fn uncached_units(stats: &serde_json::Value) -> BTreeMap<String, u64> {
    stats["not_cacheable_reasons"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| *k != "informational" && *k != "compile_failed" && v.as_u64() != Some(0))
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .chain(
            stats["not_cacheable_details"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap())),
        )
        .collect()
}

/// Build-script runs cargo reports (`cargo build -v`: "Running `…/build-script-build`").
fn build_script_runs(out: &Output) -> usize {
    s(&out.stderr)
        .lines()
        .filter(|l| l.contains("Running `") && l.contains("build-script-build`"))
        .count()
}

#[test]
fn linked_crates_hit_in_a_fresh_target_dir() {
    require_tool("cc");
    let mut env = Env::new("rust-linked");
    // Without the implicit bases cachepot adds no --remap-path-prefix, so its links must be plain
    // cargo's bytes exactly (what the linker's dependency-file option must not change); links
    // with the bases on are tested across machines in rust_cargo.rs.
    env.set("CACHEPOT_RUST_IMPLICIT_BASEDIRS", "false");
    let ws = env.dir.join("ws");
    write_workspace(&ws);
    let t1 = env.dir.join("t1");
    let t1s = t1.to_str().unwrap();

    // Plain cargo first: the reference bytes.
    cargo(&env, &ws, false, &["build", "--target-dir", t1s]);
    let plain = linked_files(&t1);
    std::fs::remove_dir_all(&t1).unwrap();

    cargo(&env, &ws, true, &["build", "--target-dir", t1s]);
    let cold = env.stats();
    assert!(cold["misses"].as_u64().unwrap() >= 30, "{cold}");
    assert_eq!(uncached_units(&cold), BTreeMap::new(), "{cold}");
    check_programs(&env, &t1, "v1");
    assert_eq!(
        linked_files(&t1),
        plain,
        "a cached cold build links other bytes than plain cargo"
    );
    cargo(&env, &ws, true, &["test", "--target-dir", t1s]);

    // A fresh target dir: every unit hits, no rustc compiles.
    env.ok(&["--zero-stats"]);
    std::fs::remove_dir_all(&t1).unwrap();
    cargo(&env, &ws, true, &["build", "--target-dir", t1s]);
    let warm = env.stats();
    assert_eq!(warm["misses"].as_u64(), Some(0), "{warm}");
    assert_eq!(uncached_units(&warm), BTreeMap::new(), "{warm}");
    assert!(warm["hits"].as_u64().unwrap() >= 30, "{warm}");
    check_programs(&env, &t1, "v1");
    let restored = linked_files(&t1);
    assert_eq!(restored.keys().collect::<Vec<_>>(), plain.keys().collect::<Vec<_>>());
    for (name, bytes) in &restored {
        assert!(plain[name] == *bytes, "{name} differs from plain cargo's");
    }
    // Another target dir path: the rlibs a link reads are recorded relative to the profile dir, so
    // bins, proc-macros, build scripts and the cdylib hit there too (those of this graph that do not
    // build on serde or thiserror, whose rlibs embed their OUT_DIR path).
    // `-p` gives shared dependencies (syn) other features than the whole workspace does: a first
    // build stores those in t3, and t2 is the one that must hit.
    let (t2, t3) = (env.dir.join("t2"), env.dir.join("t3"));
    let some = |t: &Path| {
        cargo(
            &env,
            &ws,
            true,
            &["build", "-p", "tool", "-p", "cdy", "--target-dir", t.to_str().unwrap()],
        )
    };
    some(&t3);
    env.ok(&["--zero-stats"]);
    some(&t2);
    let elsewhere = env.stats();
    assert_eq!(elsewhere["misses"].as_u64(), Some(0), "{elsewhere}");
    assert!(elsewhere["hits"].as_u64().unwrap() >= 10, "{elsewhere}");
    assert_eq!(
        run(t2.join("debug/tool"), &["--name", "t2"]),
        "Tool v1 says hello to t2\n"
    );
    assert!(linked_files(&t2)["libcdy.so"] == plain["libcdy.so"]);

    // The test harnesses too: the second `cargo test` compiles nothing.
    env.ok(&["--zero-stats"]);
    let out = cargo(&env, &ws, true, &["test", "--target-dir", t1s]);
    assert!(
        s(&out.stdout).contains("test prints_the_product ... ok"),
        "{}",
        s(&out.stdout)
    );
    let tests = env.stats();
    assert_eq!(tests["misses"].as_u64(), Some(0), "{tests}");
    assert!(tests["hits"].as_u64().unwrap() >= 3, "{tests}");

    // Build scripts rerun as cargo decides, restored binary or not: not on a no-op build...
    let noop = cargo(&env, &ws, true, &["build", "-v", "--target-dir", t1s]);
    assert_eq!(build_script_runs(&noop), 0, "{}", s(&noop.stderr));
    // ...and on a change of a `rerun-if-changed` file, whose new code is linked in.
    std::fs::write(
        ws.join("native/c/mul.c"),
        "int native_mul(int a, int b) { return a * b + 1; }\n",
    )
    .unwrap();
    let changed = cargo(&env, &ws, true, &["build", "-v", "--target-dir", t1s]);
    assert_eq!(build_script_runs(&changed), 1, "{}", s(&changed.stderr));
    assert_eq!(
        run(t1.join("debug/app"), &[]),
        "Product v1 {\"a\":6,\"b\":7,\"product\":43}\n"
    );
    std::fs::write(
        ws.join("native/c/mul.c"),
        "int native_mul(int a, int b) { return a * b; }\n",
    )
    .unwrap();

    // A proc-macro's source changes: it and the crates that use it miss, and expand anew.
    std::fs::write(ws.join("macros/src/lib.rs"), macro_source("v2")).unwrap();
    env.ok(&["--zero-stats"]);
    std::fs::remove_dir_all(&t1).unwrap();
    cargo(&env, &ws, true, &["build", "--target-dir", t1s]);
    let after = env.stats();
    // macros, app, tool; the C file is back as it was, so native and its build script hit.
    assert_eq!(after["misses"].as_u64(), Some(3), "{after}");
    check_programs(&env, &t1, "v2");
}

/// One `rustc` call through cachepot in `env`'s dir; returns the output.
fn rustc(env: &Env, args: &[&str]) -> Output {
    let out = env.cachepot(&[&["rustc"], args].concat());
    assert!(out.status.success(), "rustc {args:?}: {}", s(&out.stderr));
    out
}

fn counts(env: &Env) -> (u64, u64) {
    let st = env.stats();
    (st["misses"].as_u64().unwrap(), st["hits"].as_u64().unwrap())
}

#[test]
fn what_a_link_reads_changes_the_result() {
    let cc = require_tool("cc");
    let mut env = Env::new("rust-link-inputs");
    name_the_toolchain(&mut env);
    let d = &env.dir;
    d.write(
        "main.rs",
        "extern \"C\" {\n    fn sq(x: i32) -> i32;\n}\nfn main() {\n    println!(\"{}\", unsafe { sq(5) });\n}\n",
    );
    std::fs::create_dir_all(d.join("lib")).unwrap();
    std::fs::create_dir_all(d.join("out")).unwrap();
    let build_lib = |body: &str| {
        d.write("sq.c", format!("int sq(int x) {{ return {body}; }}\n"));
        let st = Command::new(&cc)
            .current_dir(&d.path)
            .args(["-shared", "-fPIC", "sq.c", "-o", "lib/libsq.so"])
            .status()
            .unwrap();
        assert!(st.success());
    };
    build_lib("x * x");
    d.write("wrap.sh", format!("#!/bin/sh\nexec {} \"$@\"\n", cc.display()));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("wrap.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    d.write("extra.ld", "/* an empty linker script */\n");
    let base = [
        "--crate-name",
        "sqapp",
        "--crate-type",
        "bin",
        "--edition=2021",
        "--emit=dep-info,link",
        "--out-dir",
        "out",
        "-L",
        "native=lib",
        "-l",
        "dylib=sq",
        "-C",
        "linker=./wrap.sh",
        "-C",
        "link-arg=-Wl,-T,extra.ld",
        "main.rs",
    ];
    let app = d.join("out/sqapp");
    let answer = || {
        let out = Command::new(&app)
            .env("LD_LIBRARY_PATH", d.join("lib"))
            .output()
            .unwrap();
        s(&out.stdout)
    };
    rustc(&env, &base);
    assert_eq!(answer(), "25\n");
    let first = std::fs::read(&app).unwrap();
    std::fs::remove_file(&app).unwrap();
    rustc(&env, &base);
    assert_eq!(counts(&env), (1, 1));
    assert_eq!(std::fs::read(&app).unwrap(), first);
    {
        use std::os::unix::fs::PermissionsExt;
        assert_ne!(std::fs::metadata(&app).unwrap().permissions().mode() & 0o111, 0);
    }

    // The same call without cachepot links the same bytes (the dependency-file option changes
    // nothing in the output).
    let plain = Command::new("rustc")
        .current_dir(&d.path)
        .env("RUSTUP_TOOLCHAIN", env.extra_env[0].1.clone())
        .args(base)
        .status()
        .unwrap();
    assert!(plain.success());
    assert_eq!(std::fs::read(&app).unwrap(), first);

    // A native library the link reads changes: miss.
    std::thread::sleep(std::time::Duration::from_millis(20));
    build_lib("x * x + 1");
    rustc(&env, &base);
    assert_eq!(counts(&env), (2, 1));
    // The new library is loaded at run time anyway; what matters is that the link ran again.
    assert_eq!(answer(), "26\n");
    rustc(&env, &base);
    assert_eq!(counts(&env), (2, 2));

    // A linker script changes: miss.
    d.write("extra.ld", "/* an empty linker script, edited */\n");
    rustc(&env, &base);
    assert_eq!(counts(&env), (3, 2));

    // Another -C link-arg: miss.
    let mut more = base.to_vec();
    more.splice(0..0, ["-C", "link-arg=-Wl,-z,stack-size=1048576"]);
    rustc(&env, &more);
    assert_eq!(counts(&env), (4, 2));

    // The linker wrapper's content changes (same path): miss.
    d.write(
        "wrap.sh",
        format!("#!/bin/sh\n# edited\nexec {} \"$@\"\n", cc.display()),
    );
    rustc(&env, &base);
    assert_eq!(counts(&env), (5, 2));
    rustc(&env, &base);
    assert_eq!(counts(&env), (5, 3));
    assert_eq!(answer(), "26\n");
    // Nothing of ours is left beside the outputs.
    let mut names: Vec<String> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["sqapp", "sqapp.d"]);
}

#[test]
fn links_whose_inputs_cannot_be_known_pass_through() {
    let mut env = Env::new("rust-link-refused");
    name_the_toolchain(&mut env);
    env.dir.write("main.rs", "fn main() { println!(\"ok\"); }\n");
    env.dir.write("args.txt", "-z\nnow\n");
    std::fs::create_dir_all(env.dir.join("out")).unwrap();
    let call = |extra: &[&str]| {
        let mut a = vec![
            "--crate-name",
            "m",
            "--crate-type",
            "bin",
            "--emit=link",
            "--out-dir",
            "out",
        ];
        a.extend_from_slice(extra);
        a.push("main.rs");
        rustc(&env, &a);
        let out = Command::new(env.dir.join("out/m")).output().unwrap();
        assert_eq!(s(&out.stdout), "ok\n");
    };
    call(&["-C", "link-arg=-Wl,@args.txt"]);
    assert_eq!(env.not_cacheable_detail("rustc -C link-arg naming a response file"), 1);
    call(&["-C", "link-arg=-B/usr/bin/"]);
    assert_eq!(
        env.not_cacheable_detail("rustc -C link-arg naming a linker program or plugin"),
        1
    );
    // A verbose link prints the linker's command line (ours has one more option): passed through,
    // so the messages are rustc's own.
    let verbose = rustc(
        &env,
        &[
            "--crate-name",
            "v",
            "--crate-type",
            "bin",
            "--out-dir",
            "out",
            "-C",
            "link-arg=-v",
            "-W",
            "linker-messages",
            "main.rs",
        ],
    );
    assert!(s(&verbose.stderr).contains("COLLECT_GCC"), "{}", s(&verbose.stderr));
    assert!(
        !s(&verbose.stderr).contains("dependency-file"),
        "{}",
        s(&verbose.stderr)
    );
    assert_eq!(
        env.not_cacheable_detail("a link whose messages show its command line"),
        1
    );
    // The same crate without them is cached.
    call(&[]);
    assert_eq!(counts(&env), (1, 0));
}

/// A linker that does not know `--dependency-file` (GNU ld before 2.35, gold), and a link that
/// fails: the build gets exactly what rustc says without cachepot, never the option we added.
#[test]
fn a_linker_without_dependency_files_still_links() {
    let cc = require_tool("cc");
    let mut env = Env::new("rust-old-linker");
    name_the_toolchain(&mut env);
    let d = &env.dir;
    d.write("main.rs", "fn main() { println!(\"linked\"); }\n");
    d.write(
        "old-cc.sh",
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *--dependency-file*) \
             echo \"ld: unrecognized option '${{a#-Wl,}}'\" >&2; exit 1;; esac; done\nexec {} \"$@\"\n",
            cc.display()
        ),
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("old-cc.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(d.join("out")).unwrap();
    let args = [
        "rustc",
        "--crate-name",
        "m",
        "--crate-type",
        "bin",
        "--emit=link",
        "--out-dir",
        "out",
        "-C",
        "linker=./old-cc.sh",
        "main.rs",
    ];
    for _ in 0..2 {
        let out = env.cachepot(&args);
        assert!(out.status.success(), "{}", s(&out.stderr));
        assert!(!s(&out.stderr).contains("dependency-file"), "{}", s(&out.stderr));
        assert_eq!(run(d.join("out/m"), &[]), "linked\n");
    }
    let st = env.stats();
    assert_eq!(
        st["other"]["rust.linker_without_dependency_file"].as_u64(),
        Some(2),
        "{st}"
    );
    assert_eq!(st["misses"].as_u64(), Some(0), "{st}");

    // A link that fails (an undefined symbol): the same stderr as rustc's own.
    d.write(
        "bad.rs",
        "extern \"C\" { fn not_defined_anywhere(); }\nfn main() { unsafe { not_defined_anywhere() } }\n",
    );
    let bad = [
        "--crate-name",
        "bad",
        "--crate-type",
        "bin",
        "--out-dir",
        "out",
        "bad.rs",
    ];
    let cached = env.cachepot(&[&["rustc"], &bad[..]].concat());
    let plain = Command::new("rustc")
        .current_dir(&d.path)
        .env("RUSTUP_TOOLCHAIN", env.extra_env[0].1.clone())
        .args(bad)
        .output()
        .unwrap();
    assert!(!cached.status.success() && !plain.status.success());
    assert_eq!(cached.status.code(), plain.status.code());
    let scrub = |b: &[u8]| {
        // rustc's temp dir has a random name.
        let t = s(b);
        t.split(['"', ' ', '\n'])
            .filter(|w| !w.contains("/rustc"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        s(&cached.stderr).contains("not_defined_anywhere"),
        "{}",
        s(&cached.stderr)
    );
    assert!(!s(&cached.stderr).contains("dependency-file"), "{}", s(&cached.stderr));
    assert_eq!(scrub(&cached.stderr), scrub(&plain.stderr));

    // Without --emit (rustc's default is link): the program is written, then restored.
    let plain_call = [
        "rustc",
        "--crate-name",
        "noemit",
        "--crate-type",
        "bin",
        "--out-dir",
        "out",
        "main.rs",
    ];
    for _ in 0..2 {
        std::fs::remove_file(d.join("out/noemit")).ok();
        let out = env.cachepot(&plain_call);
        assert!(out.status.success(), "{}", s(&out.stderr));
        assert_eq!(run(d.join("out/noemit"), &[]), "linked\n");
    }
    assert_eq!(counts(&env), (1, 1));
}

/// No temp dir in the cache dir for the linker's list: the crate is built, not cached, the fault
/// counted.
#[test]
fn no_room_for_the_linkers_list_still_links() {
    let mut env = Env::new("rust-link-no-tmp");
    name_the_toolchain(&mut env);
    env.dir.write("main.rs", "fn main() { println!(\"ok\"); }\n");
    std::fs::create_dir_all(env.dir.join("out")).unwrap();
    std::fs::create_dir_all(&env.cache).unwrap();
    std::fs::write(env.cache.join("tmp"), "a file where the temp dir goes").unwrap();
    rustc(
        &env,
        &[
            "--crate-name",
            "m",
            "--crate-type",
            "bin",
            "--out-dir",
            "out",
            "main.rs",
        ],
    );
    assert_eq!(run(env.dir.join("out/m"), &[]), "ok\n");
    assert_eq!(env.error_kind("write_failed"), 1);
    assert_eq!(env.stats()["misses"].as_u64(), Some(0));
}
