//! The catalogue of stale-hit paths (issue 12): one test per way a cache could hand out an object
//! that does not match the sources, each building the situation with real compilers and checking
//! what the user gets — the program's behaviour, the build's files, `--show-stats --json`.
//! bench/false_hits_ccache.sh runs the same steps with ccache for comparison.
mod common;
mod remote_support;
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

// ---- A file saved again while the compile runs ----

/// Replace `path` with `content` (a new file renamed over it, as editors save) the moment the file
/// is read and closed for the `nth` time — by cachepot hashing it, by the preprocessor run, by the
/// compiler — so what runs next sees the new content. inotify makes the moment exact; the writer
/// still races the next reader's start, so the caller checks which content the compiler saw.
fn replace_on_read(path: &Path, nth: usize, content: &'static str) -> std::thread::JoinHandle<std::time::Instant> {
    replace_on_read_keeping(path, nth, content, false)
}

/// `replace_on_read`; with `keep_mtime`, the new file gets the old one's mtime, as `cp -p`,
/// `rsync -t` or an archive extraction would give it: only its ctime and inode tell the change.
fn replace_on_read_keeping(
    path: &Path,
    nth: usize,
    content: &'static str,
    keep_mtime: bool,
) -> std::thread::JoinHandle<std::time::Instant> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain inotify calls on a descriptor owned here and closed by the thread.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(fd >= 0, "inotify_init1: {}", std::io::Error::last_os_error());
    let wd = unsafe { libc::inotify_add_watch(fd, c_path.as_ptr(), libc::IN_CLOSE_NOWRITE) };
    assert!(wd >= 0, "inotify_add_watch: {}", std::io::Error::last_os_error());
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let event = std::mem::size_of::<libc::inotify_event>();
        let mut seen = 0;
        let mut buf = [0u8; 4096];
        while seen < nth {
            // SAFETY: reads into a buffer of the given size; blocks until events come.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            assert!(n > 0, "inotify read: {}", std::io::Error::last_os_error());
            // A watch on a file: events carry no name, so each is exactly one header long.
            seen += n as usize / event;
        }
        let tmp = path.with_extension("saving");
        std::fs::write(&tmp, content).unwrap();
        if keep_mtime {
            let old = std::fs::metadata(&path).unwrap().modified().unwrap();
            std::fs::File::options()
                .write(true)
                .open(&tmp)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        std::fs::rename(&tmp, &path).unwrap();
        let saved = std::time::Instant::now();
        // SAFETY: closing the descriptor made above, once.
        unsafe { libc::close(fd) };
        saved
    })
}

/// Write `content` to `path` anew (as an editor saving it again would).
fn save(path: &Path, content: &str) {
    let tmp = path.with_extension("saving");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The program prints "before" or "during": which text of `edited` its object was compiled from.
struct Edit {
    edited: &'static str,
    before: &'static str,
    during: &'static str,
    /// Which read of `edited` the save follows, and what the compiler then sees.
    nth_read: usize,
    compiler_sees: &'static str,
    direct: bool,
}

/// Compile `main.c` through cachepot while `edited` is saved again the moment it is read for the
/// nth time; then compile with each text in turn. Each object must come from the text on disk:
/// an entry stored under content the compiler did not see would be served for that content.
fn saved_during_compile(name: &str, e: Edit) {
    for attempt in 1..=5 {
        let mut env = Env::new(name);
        if !e.direct {
            env.set("CACHEPOT_DIRECT", "0");
        }
        let main = "#include <stdio.h>\n#include \"h.h\"\nint main(void) { puts(V); return 0; }\n";
        env.dir
            .write("main.c", if e.edited == "main.c" { e.before } else { main });
        if e.edited != "main.c" {
            env.dir.write(e.edited, e.before);
        }
        let path = env.dir.join(e.edited);
        // Let the file age past "just written" so that only the save during the call is new.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let writer = replace_on_read(&path, e.nth_read, e.during);
        let args = ["gcc", "-c", "main.c", "-o", "main.o"];
        env.ok(&args);
        writer.join().unwrap();
        let first = run_program(&env.dir.path, &["main.o"]);
        if first != format!("{}\n", e.compiler_sees) {
            // The compiler started before the save landed: the situation was not built. Again.
            eprintln!(
                "attempt {attempt}: the compiler saw {first:?}, not {:?}",
                e.compiler_sees
            );
            continue;
        }
        for (text, want) in [(e.before, "before\n"), (e.during, "during\n"), (e.before, "before\n")] {
            save(&path, text);
            std::fs::remove_file(env.dir.join("main.o")).unwrap();
            env.ok(&args);
            assert_eq!(
                run_program(&env.dir.path, &["main.o"]),
                want,
                "a stale object: compiled from one text of {}, served for the other; {}",
                e.edited,
                env.stats()
            );
        }
        // Both texts are cached by now: the last call hit.
        assert!(env.stat("hits") >= 1, "{}", env.stats());
        if e.compiler_sees == "during" {
            // The first key was made from the text before: nothing stored, the reason counted.
            assert_eq!(env.not_cacheable("input_changed"), 1, "{}", env.stats());
        }
        return;
    }
    panic!("in 5 attempts the compiler never saw {:?}", e.compiler_sees);
}

const MAIN_BEFORE: &str = "#include <stdio.h>\nint main(void) { puts(\"before\"); return 0; }\n";
const MAIN_DURING: &str = "#include <stdio.h>\nint main(void) { puts(\"during\"); return 0; }\n";
const H_BEFORE: &str = "#define V \"before\"\n";
const H_DURING: &str = "#define V \"during\"\n";

#[test]
fn source_saved_after_cachepot_read_it_direct_mode() {
    // cachepot hashes the source (read 1), the compiler reads the new text.
    let e = Edit {
        edited: "main.c",
        before: MAIN_BEFORE,
        during: MAIN_DURING,
        nth_read: 1,
        compiler_sees: "during",
        direct: true,
    };
    saved_during_compile("fh-src-direct", e);
}

#[test]
fn source_saved_between_preprocessing_and_compiling() {
    // cachepot hashes the source (read 1), `gcc -E` reads it (read 2), the compiler reads anew.
    let e = Edit {
        edited: "main.c",
        before: MAIN_BEFORE,
        during: MAIN_DURING,
        nth_read: 2,
        compiler_sees: "during",
        direct: false,
    };
    saved_during_compile("fh-src-cpp", e);
}

#[test]
fn header_saved_between_preprocessing_and_compiling() {
    // `gcc -E` reads the header (read 1), the compiler reads the new text.
    let e = Edit {
        edited: "h.h",
        before: H_BEFORE,
        during: H_DURING,
        nth_read: 1,
        compiler_sees: "during",
        direct: false,
    };
    saved_during_compile("fh-h-cpp", e);
}

#[test]
fn header_saved_after_the_compiler_read_it_direct_mode() {
    // The compiler reads the header (read 1); cachepot hashes it after the compile. (Closed on
    // main already by the "changed after the call started" rule: this guards it.)
    let e = Edit {
        edited: "h.h",
        before: H_BEFORE,
        during: H_DURING,
        nth_read: 1,
        compiler_sees: "before",
        direct: true,
    };
    saved_during_compile("fh-h-direct", e);
}

#[test]
fn rust_source_replaced_after_rustc_read_it_keeping_its_mtime() {
    // rustc reads lib.rs (read 1); it is replaced by a file with the old mtime (cp -p); cachepot
    // hashes it after the compile. cargo goes by mtime, so the builds after `cargo clean`.
    let cargo = require_tool("cargo");
    for attempt in 1..=5 {
        let mut env = Env::new("fh-rust-src");
        env.set("RUSTC_WRAPPER", cachepot_bin().display().to_string());
        env.set("CARGO_TARGET_DIR", env.dir.join("target").display().to_string());
        env.set("CARGO_INCREMENTAL", "0");
        // A library (cached) and a binary using it (links: run through, not cached).
        env.dir.write(
            "Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nmsg = { path = \"msg\" }\n",
        );
        env.dir
            .write("src/main.rs", "fn main() { println!(\"{}\", msg::text()); }\n");
        env.dir.write(
            "msg/Cargo.toml",
            "[package]\nname = \"msg\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        );
        // Code that keeps rustc busy well after it read the file, so the save lands before
        // cachepot hashes it even when the writer thread waits for a CPU.
        let filler: String = (0..3000)
            .map(|i| format!("pub fn f{i}(x: u64) -> u64 {{ x.wrapping_mul({i}).rotate_left(3) ^ {i} }}\n"))
            .collect();
        let text = |word: &str| -> &'static str {
            Box::leak(format!("pub fn text() -> &'static str {{ \"{word}\" }}\n{filler}").into_boxed_str())
        };
        let (before, during) = (text("before"), text("during"));
        let main = env.dir.write("msg/src/lib.rs", before);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let writer = replace_on_read_keeping(&main, 1, during, true);
        let build = || {
            let out = env.cmd(&cargo).args(["build", "--offline", "-q"]).output().unwrap();
            assert!(out.status.success(), "{}", s(&out.stderr));
            let built = std::time::Instant::now();
            let run = Command::new(env.dir.join("target/debug/app")).output().unwrap();
            (s(&run.stdout), built)
        };
        let (first, built) = build();
        let saved = writer.join().unwrap();
        if first != "before\n" || saved > built {
            // rustc started after the save, or the save came after the whole build (a starved
            // writer): the situation was not built. Again.
            eprintln!(
                "attempt {attempt}: rustc saw {first:?}; saved after the build: {}",
                saved > built
            );
            continue;
        }
        for (text, want) in [(during, "during\n"), (before, "before\n"), (during, "during\n")] {
            save(&main, text);
            let out = env.cmd(&cargo).args(["clean", "-q"]).output().unwrap();
            assert!(out.status.success());
            assert_eq!(build().0, want, "a stale crate: {}", env.stats());
        }
        assert!(env.stat("hits") >= 1, "{}", env.stats());
        // The first compile's file changed after rustc read it: not stored, the reason counted.
        assert_eq!(env.not_cacheable("input_changed"), 1, "{}", env.stats());
        return;
    }
    panic!("in 5 attempts rustc never saw the text before");
}

// ---- Every option that makes the compiler read a file ----

fn compile_and_run(env: &Env, args: &[&str]) -> String {
    env.ok(args);
    run_program(&env.dir.path, &["m.o"])
}

const PRINT_V: &str = "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", V); return 0; }\n";

#[test]
fn specs_file_in_a_b_prefix_is_not_cached() {
    // gcc reads `specs` from a -B prefix (and its compiler proper and assembler): none of it keyed.
    let env = Env::new("fh-bprefix");
    env.dir.write("m.c", PRINT_V);
    let args = ["gcc", "-B", "pre/", "-c", "m.c", "-o", "m.o"];
    env.dir.write("pre/specs", "*cpp:\n+ -DV=1\n\n");
    assert_eq!(compile_and_run(&env, &args), "1\n");
    env.dir.write("pre/specs", "*cpp:\n+ -DV=2\n\n");
    assert_eq!(compile_and_run(&env, &args), "2\n", "a stale object: {}", env.stats());
    assert_eq!(env.not_cacheable_detail("-B prefix"), 2, "{}", env.stats());
}

#[test]
fn specs_file_is_keyed_by_content() {
    let env = Env::new("fh-specs");
    env.dir.write("m.c", PRINT_V);
    for spelling in [&["-specs=s.specs"][..], &["--specs=s.specs"], &["-specs", "s.specs"]] {
        let mut args = vec!["gcc", "-c", "m.c", "-o", "m.o"];
        args.extend_from_slice(spelling);
        env.dir.write("s.specs", "*cpp:\n+ -DV=1\n\n");
        assert_eq!(compile_and_run(&env, &args), "1\n");
        env.dir.write("s.specs", "*cpp:\n+ -DV=2\n\n");
        assert_eq!(compile_and_run(&env, &args), "2\n", "{spelling:?}: {}", env.stats());
        let hits = env.stat("hits");
        assert_eq!(compile_and_run(&env, &args), "2\n");
        assert_eq!(
            env.stat("hits"),
            hits + 1,
            "{spelling:?} is not cached: {}",
            env.stats()
        );
    }
}

#[test]
fn default_profile_of_fprofile_instr_use_is_keyed_by_content() {
    // clang -fprofile-instr-use without a value reads default.profdata: the object must be the
    // one plain clang makes with the profile on disk.
    let env = Env::new("fh-defprof");
    let profdata = which::which("llvm-profdata")
        .or_else(|_| which::which("llvm-profdata-14"))
        .unwrap_or_else(|_| panic!("llvm-profdata is not installed; run .ci/run"));
    env.dir.write(
        "m.c",
        "int f(int x) { int s = 0; for (int i = 0; i < x; i++) { if (i % 3) s += i; else s -= x; } return s; }\n",
    );
    let prof = |count: u32| {
        env.dir.write(
            "p.proftext",
            format!("# IR level Instrumentation Flag\n:ir\nf\n# Func Hash:\n1\n# Num Counters:\n1\n# Counter Values:\n{count}\n"),
        );
        let out = Command::new(&profdata)
            .current_dir(&env.dir.path)
            .args(["merge", "-o", "default.profdata", "p.proftext"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
    };
    let flags = [
        "-c",
        "m.c",
        "-O2",
        "-Wno-profile-instr-unprofiled",
        "-Wno-profile-instr-out-of-date",
        "-fprofile-instr-use",
    ];
    let plain = |name: &str| {
        let out = Command::new("clang")
            .current_dir(&env.dir.path)
            .args(flags)
            .args(["-o", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
        env.dir.read(name)
    };
    let mut args = vec!["clang"];
    args.extend_from_slice(&flags);
    args.extend_from_slice(&["-o", "m.o"]);
    prof(10);
    env.ok(&args);
    assert_eq!(env.dir.read("m.o"), plain("plain.o"));
    prof(1_000_000);
    env.ok(&args);
    assert_eq!(env.stat("hits"), 0, "a changed default.profdata hit: {}", env.stats());
    assert_eq!(env.dir.read("m.o"), plain("plain.o"));
}

// ---- Outputs that record the command line ----

/// Two compiles of one source to two object names: each object must be what the compiler makes
/// for its own command line (with the flag, it records the output path).
fn records_command_line(name: &str, compiler: &str, flags: &[&str], detail: &str) {
    let env = Env::new(name);
    require_tool(compiler);
    env.dir.write("m.c", "int main(void) { return 0; }\n");
    for out in ["one.o", "two.o"] {
        let mut args = vec![compiler, "-c", "m.c"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["-o", out]);
        env.ok(&args);
        let ours = env.dir.read(out);
        // The compiler's own object, for the same command line in the same place.
        let plain = Command::new(compiler)
            .current_dir(&env.dir.path)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(plain.status.success());
        assert!(
            ours == env.dir.read(out),
            "{out} does not record its own command line: {}",
            env.stats()
        );
    }
    assert_eq!(env.not_cacheable_detail(detail), 2, "{}", env.stats());
}

#[test]
fn clang_frecord_command_line_is_not_served_to_another_command_line() {
    records_command_line(
        "fh-rec-clang",
        "clang",
        &["-frecord-command-line"],
        "-frecord-command-line",
    );
}

#[test]
fn clang_grecord_command_line_is_not_served_to_another_command_line() {
    records_command_line(
        "fh-grec-clang",
        "clang",
        &["-g", "-grecord-command-line"],
        "-grecord-command-line",
    );
}

#[test]
fn gcc_frecord_gcc_switches_is_not_served_to_another_command_line() {
    records_command_line("fh-rec-gcc", "gcc", &["-frecord-gcc-switches"], "-frecord-gcc-switches");
}

// ---- Headers looked for but not found ----

/// Build `m.o` from m.c with `args`, run it; then `create` a file and build again: the program
/// must now print `after` (plain gcc would), and a third build must hit.
fn header_appears(name: &str, files: &[(&str, &str)], args: &[&str], create: (&str, &str), before: &str, after: &str) {
    for direct in [true, false] {
        let mut env = Env::new(name);
        if !direct {
            env.set("CACHEPOT_DIRECT", "0");
        }
        for (path, text) in files {
            env.dir.write(path, text);
        }
        let mut all = vec!["gcc", "-c", "m.c", "-o", "m.o"];
        all.extend_from_slice(args);
        assert_eq!(compile_and_run(&env, &all), before);
        // The same again: cached (a hit of one kind or the other: the first call stored its
        // result under the key that the source's later calls look up).
        assert_eq!(compile_and_run(&env, &all), before);
        assert_eq!(
            env.stat("hits"),
            1,
            "direct {direct}: the second call is a hit: {}",
            env.stats()
        );
        env.dir.write(create.0, create.1);
        assert_eq!(
            compile_and_run(&env, &all),
            after,
            "direct {direct}: a stale object after {} appeared: {}",
            create.0,
            env.stats()
        );
        let hits = env.stat("hits");
        assert_eq!(compile_and_run(&env, &all), after);
        assert_eq!(
            env.stat("hits"),
            hits + 1,
            "direct {direct}: not cached: {}",
            env.stats()
        );
    }
}

const PROBE_MAIN: &str = "#include <stdio.h>\n#include \"cfg.h\"\nint main(void) { printf(\"%d\\n\", V); return 0; }\n";

#[test]
fn has_include_in_the_source_of_a_header_that_appears_later() {
    let m = "#include <stdio.h>\n#if __has_include(\"opt.h\")\n#include \"opt.h\"\n#else\n#define V 0\n#endif\n\
             int main(void) { printf(\"%d\\n\", V); return 0; }\n";
    header_appears(
        "fh-hasinc-src",
        &[("m.c", m)],
        &[],
        ("opt.h", "#define V 7\n"),
        "0\n",
        "7\n",
    );
}

#[test]
fn has_include_in_a_header_of_a_header_that_appears_later() {
    let cfg = "#if __has_include(<zz_probe.h>)\n#define V 9\n#else\n#define V 0\n#endif\n";
    header_appears(
        "fh-hasinc-hdr",
        &[("m.c", PROBE_MAIN), ("inc/cfg.h", cfg), ("later/.keep", "")],
        &["-Iinc", "-Ilater"],
        ("later/zz_probe.h", "\n"),
        "0\n",
        "9\n",
    );
}

#[test]
fn include_next_finds_a_header_that_appears_later_in_between() {
    // first/cfg.h #include_next's cfg.h: found in last/ now, in middle/ once it appears there.
    header_appears(
        "fh-incnext",
        &[
            ("m.c", PROBE_MAIN),
            ("first/cfg.h", "#include_next <cfg.h>\n"),
            ("middle/.keep", ""),
            ("last/cfg.h", "#define V 1\n"),
        ],
        &["-Ifirst", "-Imiddle", "-Ilast"],
        ("middle/cfg.h", "#define V 2\n"),
        "1\n",
        "2\n",
    );
}

#[test]
fn assembler_include_is_not_cached() {
    // `.include` is read by the assembler: no dependency listing or preprocessed text holds it.
    for (src, lang) in [("f.S", "assembler-with-cpp"), ("f.s", "assembler")] {
        let env = Env::new("fh-asminc");
        env.dir.write(src, "\t.include \"val.inc\"\n\t.globl value\nvalue:\n\tmovl $V, %eax\n\tret\n\t.section .note.GNU-stack,\"\",@progbits\n");
        env.dir.write(
            "m.c",
            "#include <stdio.h>\nint value(void);\nint main(void) { printf(\"%d\\n\", value()); return 0; }\n",
        );
        let out = Command::new("gcc")
            .current_dir(&env.dir.path)
            .args(["-c", "m.c", "-o", "main.o"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let args = ["gcc", "-c", src, "-o", "f.o"];
        for v in [1, 2] {
            env.dir.write("val.inc", format!("\t.set V, {v}\n"));
            env.ok(&args);
            assert_eq!(
                run_program(&env.dir.path, &["main.o", "f.o"]),
                format!("{v}\n"),
                "{lang}: {}",
                env.stats()
            );
        }
        assert_eq!(
            env.not_cacheable_detail(".include in assembler"),
            2,
            "{lang}: {}",
            env.stats()
        );
    }
}

// ---- Environment the compiler reads ----

#[test]
fn ccc_override_options_is_not_cached() {
    // CCC_OVERRIDE_OPTIONS edits clang's arguments: "+-DV=2" adds a definition.
    let mut env = Env::new("fh-ccc");
    require_tool("clang");
    env.dir.write(
        "m.c",
        "#include <stdio.h>\n#ifndef V\n#define V 1\n#endif\nint main(void) { printf(\"%d\\n\", V); return 0; }\n",
    );
    let args = ["clang", "-c", "m.c", "-o", "m.o"];
    assert_eq!(compile_and_run(&env, &args), "1\n");
    env.set("CCC_OVERRIDE_OPTIONS", "+-DV=2");
    assert_eq!(compile_and_run(&env, &args), "2\n", "a stale object: {}", env.stats());
    assert_eq!(env.not_cacheable_detail("CCC_OVERRIDE_OPTIONS"), 1, "{}", env.stats());
}

#[test]
fn compiler_path_and_gcc_exec_prefix_are_not_cached() {
    // Both name where gcc finds its compiler proper and assembler; the identity holds neither.
    for (var, value) in [("COMPILER_PATH", "progs/"), ("GCC_EXEC_PREFIX", "/usr/lib/gcc/")] {
        let mut env = Env::new("fh-gccenv");
        env.dir.write("m.c", PRINT_V.replace("V)", "5)").as_str());
        std::fs::create_dir_all(env.dir.join("progs")).unwrap();
        env.set(var, value);
        assert_eq!(compile_and_run(&env, &["gcc", "-c", "m.c", "-o", "m.o"]), "5\n");
        assert_eq!(env.not_cacheable_detail(var), 1, "{var}: {}", env.stats());
    }
}

// ---- rustc outside cargo ----

#[test]
fn rustc_from_a_plain_shell_runs_the_toolchain_rustup_would_pick() {
    // No RUSTUP_TOOLCHAIN (cargo sets it; a shell does not): a private RUSTUP_HOME whose
    // toolchain "real" is this machine's (linked, as `rustup toolchain link` does).
    require_tool("rustup");
    let env = Env::new("fh-rustup");
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
    assert!(sysroot.status.success());
    let sysroot = s(&sysroot.stdout).trim().to_string();
    let home = env.dir.join("rustup");
    std::fs::create_dir_all(home.join("toolchains")).unwrap();
    std::os::unix::fs::symlink(&sysroot, home.join("toolchains/real")).unwrap();
    let settings = |extra: &str| {
        std::fs::write(
            home.join("settings.toml"),
            format!("version = \"12\"\ndefault_toolchain = \"real\"\n{extra}"),
        )
        .unwrap();
    };
    settings("");
    env.dir.write("proj/lib.rs", "pub fn answer() -> u32 { 42 }\n");
    let proj = env.dir.join("proj");
    let rustc = |via_cachepot: bool, out: &str| {
        let mut c = if via_cachepot {
            let mut c = env.cmd(cachepot_bin());
            c.arg("rustc");
            c
        } else {
            env.cmd("rustc")
        };
        c.current_dir(&proj)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env("RUSTUP_HOME", &home)
            .args([
                "--crate-name",
                "answer",
                "--crate-type",
                "lib",
                "--edition",
                "2021",
                "lib.rs",
                "--out-dir",
                out,
            ]);
        c.output().unwrap()
    };
    let plain = rustc(false, "plain");
    assert!(plain.status.success(), "rustup's proxy: {}", s(&plain.stderr));
    for _ in 0..2 {
        let out = rustc(true, "out");
        assert!(out.status.success(), "{}", s(&out.stderr));
    }
    let stats = env.stats();
    assert_eq!(
        (stats["misses"].as_u64(), stats["hits"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    // The hit's library works: a program built on it with the same toolchain prints 42. (Not
    // byte-equal to the proxy's own: cachepot's --emit=dep-info changes rustc's metadata.)
    env.dir
        .write("proj/main.rs", "fn main() { println!(\"{}\", answer::answer()); }\n");
    let bin = Command::new(format!("{sysroot}/bin/rustc"))
        .current_dir(&proj)
        .args([
            "--edition",
            "2021",
            "main.rs",
            "--extern",
            "answer=out/libanswer.rlib",
            "-o",
            "main",
        ])
        .output()
        .unwrap();
    assert!(bin.status.success(), "{}", s(&bin.stderr));
    assert_eq!(s(&Command::new(proj.join("main")).output().unwrap().stdout), "42\n");
    // A toolchain file naming a toolchain that is not installed: the proxy fails, and so does
    // the call through cachepot (nothing served from the default toolchain's entry).
    std::fs::write(proj.join("rust-toolchain.toml"), "[toolchain]\nchannel = \"missing\"\n").unwrap();
    assert!(!rustc(false, "plain").status.success());
    assert!(
        !rustc(true, "out").status.success(),
        "served with the default toolchain"
    );
    assert_eq!(env.stat("hits"), 1);
    // A directory override wins over the file in the same directory: cached again.
    settings(&format!(
        "[overrides]\n\"{}\" = \"real\"\n",
        proj.canonicalize().unwrap().display()
    ));
    assert!(rustc(true, "out").status.success());
    assert_eq!(env.stat("hits"), 2, "{}", env.stats());
}

#[test]
fn rustc_without_emit_into_a_new_out_dir_writes_its_library() {
    // rustc's default emit is `link`, and it makes a missing --out-dir: cachepot's own dep-info
    // request must change neither (it wrote no library, or failed, before).
    let env = Env::new("fh-rustc-emit");
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
    let rustc = format!("{}/bin/rustc", s(&sysroot.stdout).trim());
    env.dir.write("lib.rs", "pub fn answer() -> u32 { 42 }\n");
    let args = [
        rustc.as_str(),
        "--crate-name",
        "answer",
        "--crate-type",
        "lib",
        "lib.rs",
        "--out-dir",
        "new/dir",
    ];
    for _ in 0..2 {
        env.ok(&args);
        assert!(env.dir.join("new/dir/libanswer.rlib").is_file(), "{}", env.stats());
        std::fs::remove_dir_all(env.dir.join("new")).unwrap();
    }
    assert_eq!(env.stat("hits"), 1, "{}", env.stats());
}

// ---- Hits start no process ----

/// The programs a traced command started (successful execve), as "program arg1 arg2 …".
fn started_programs(strace_log: &Path) -> Vec<String> {
    std::fs::read_to_string(strace_log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("execve(") && l.trim_end().ends_with("= 0"))
        .map(|l| {
            let args = l
                .split_once("[")
                .and_then(|(_, r)| r.split_once("]"))
                .map(|(a, _)| a)
                .unwrap_or("");
            args.split(", ")
                .map(|a| a.trim_matches('"'))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn a_first_hit_from_the_remote_starts_no_process() {
    // Machine A fills a real redis; machine B (an empty cache dir) gets direct hits from it. B's
    // hits must not ask the compiler for its include directories (`-E -v`), nor (the coordinator
    // on) start it for a slot: strace counts every program started.
    let strace = require_tool("strace");
    let server = remote_support::redis(&[]);
    let url = format!("redis://127.0.0.1:{}/0", server.port);
    let files = [
        ("h.h", "#define V 3\n"),
        (
            "m.c",
            "#include <stdio.h>\n#include \"h.h\"\nint main(void) { printf(\"%d\\n\", V); return 0; }\n",
        ),
        (
            "n.c",
            "#include <stdio.h>\n#include \"h.h\"\nint main(void) { printf(\"%d\\n\", V + 1); return 0; }\n",
        ),
    ];
    let mut a = Env::new("fh-remote-a");
    a.set("CACHEPOT_REDIS", &url);
    let mut b = Env::new("fh-remote-b");
    b.set("CACHEPOT_REDIS", &url);
    b.set("XDG_RUNTIME_DIR", b.dir.join("run").display().to_string());
    for (path, text) in files {
        a.dir.write(path, text);
        b.dir.write(path, text);
    }
    // The files of B were written just now: let them age past "too new to trust by stat".
    std::thread::sleep(std::time::Duration::from_millis(2100));
    for src in ["m.c", "n.c"] {
        a.ok(&["gcc", "-c", src, "-o", "m.o"]);
    }
    for (i, (src, want)) in [("m.c", "3\n"), ("n.c", "4\n")].into_iter().enumerate() {
        if i == 1 {
            // With the compiler known, a hit takes no slot: the coordinator would be started.
            b.set("CACHEPOT_COORDINATOR", "auto");
        }
        let log = b.dir.join(format!("strace{i}.log"));
        let out = b
            .cmd(&strace)
            .args(["-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o"])
            .arg(&log)
            .arg(cachepot_bin())
            .args(["gcc", "-c", src, "-o", "m.o"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
        assert_eq!(run_program(&b.dir.path, &["m.o"]), want);
        let started = started_programs(&log);
        // The first call on B learns who gcc is (where its cc1 and as are): once per compiler and
        // machine, a compiler run like any other (it would take a slot).
        let expected = if i == 0 { 2 } else { 1 };
        assert_eq!(started.len(), expected, "call {i} started {started:?}");
        assert!(started[0].contains("cachepot"), "{started:?}");
        if i == 0 {
            assert!(started[1].ends_with("-print-search-dirs"), "{started:?}");
        }
    }
    let stats = b.stats();
    assert_eq!(stats["hits_direct"], 2, "{stats}");
    assert_eq!(
        stats["coordinator"]["running"], false,
        "a hit started the coordinator: {stats}"
    );
}
