//! Crates that link (bin, test harnesses, build scripts, proc-macro, dylib, cdylib): what the link
//! reads besides rustc's own inputs, learnt from the linker itself, the way direct mode learns
//! headers. Not the flow (rust/mod.rs) and not argument parsing (compiler/rustc.rs).
//!
//! A miss adds `-C link-arg=-Wl,--dependency-file=<temp>`: GNU ld (2.35 and later) and lld
//! (rust-lld, which rustc uses on x86_64 Linux since 1.90) write there every file they read —
//! crt files, rlibs (the std ones and those cargo found through `-L dependency=`), native and system
//! libraries, linker and version scripts. The option changes nothing in the output (rustc keeps
//! link args out of the crate hash; tests/rust_linked.rs compares binaries with and without it).
//! Each file is recorded in the manifest candidate with its content digest and checked by stat on
//! later calls. Files under the build's profile dir (`target/debug`) are recorded relative to it,
//! so a fresh target dir of the same checkout can hit; rustc's own intermediate objects (the
//! crate's `.rcgu.o` files and its `rustc*` temp dir, gone once rustc exits) are products of the
//! keyed compile and are left out. A linker that rejects the option makes the call run again
//! without it, uncached (`rust.linker_without_dependency_file`); so does any output that shows the
//! option (a failed link, whose command line rustc prints; a verbose link).
//!
//! The linker's identity is by content (identity.rs): the driver (`-C linker`, else `cc` on PATH),
//! the programs it says it runs (collect2, ld and its variants, lto-wrapper, the LTO plugin), and
//! the toolchain's own rust-lld. A link whose inputs cannot be known is refused with a reason: a
//! linker flavor that is not a cc driver (also as rustc infers it from the linker's name), a
//! response file or a linker program or plugin in the link arguments, cross-crate LTO (rustc, not
//! the linker, then reads the dependency crates), a target that is not Linux.
//!
//! Not seen: a library that would be found *earlier* in the search path if it appeared there
//! (a negative dependency, as with headers in direct mode) — the `-L` directories are keyed by
//! path, and `LIBRARY_PATH`, `LD_RUN_PATH`, `GCC_EXEC_PREFIX` and `COMPILER_PATH` by value.

use crate::compiler::rustc::RustcCompile;
use crate::config::Config;
use crate::key::KeyBuilder;
use crate::rust::manifest::HashCache;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Stands for the build's profile dir at the start of a recorded linker input.
const PROFILE_MARK: &[u8] = b"\0profile";

/// The variables the cc driver and the linker read that change what is linked.
pub const KEYED_LINK_ENV: &[&str] = &["LIBRARY_PATH", "LD_RUN_PATH", "GCC_EXEC_PREFIX", "COMPILER_PATH"];

/// Counter for links whose linker did not accept `--dependency-file`.
pub const NO_DEP_FILE_COUNTER: &str = "rust.linker_without_dependency_file";

/// Why this link's inputs cannot be known, if they cannot.
pub fn refusal(req: &RustcCompile) -> Option<&'static str> {
    if let Some(t) = &req.target
        && !t.contains("linux")
    {
        return Some("linking for a target other than Linux");
    }
    if let Some(f) = &req.linker_flavor
        && !matches!(f.as_str(), "gcc" | "gnu-cc" | "gnu-lld-cc")
    {
        return Some("rustc -C linker-flavor that is not a cc driver");
    }
    // Cross-crate LTO: rustc itself reads the dependency crates' code from their rlibs and hands the
    // linker one object, so the linker's list no longer names them (the `--extern` crates are keyed,
    // but not the ones found through `-L dependency=`).
    let lto = req.key_args.iter().find_map(|a| {
        let v = a.strip_prefix("-C lto")?;
        Some(v.strip_prefix('=').unwrap_or("fat").to_string())
    });
    if lto.is_some_and(|v| !matches!(v.as_str(), "off" | "no" | "n" | "false")) {
        return Some("rustc -C lto (rustc, not the linker, reads the dependency crates)");
    }
    // rustc picks the flavor from the linker's name too: `ld`, `x-ld`, `ld.lld`, `rust-lld`,
    // `link`, `emcc`… get arguments for that linker, not a cc driver's `-Wl,`.
    if let Some(stem) = req
        .linker
        .as_deref()
        .and_then(Path::file_stem)
        .map(|s| s.to_string_lossy())
        && (stem == "ld"
            || stem.ends_with("-ld")
            || stem.starts_with("ld.")
            || stem.contains("lld")
            || stem == "link"
            || stem == "emcc"
            || stem.ends_with("linker"))
    {
        return Some("rustc -C linker that is not a cc driver");
    }
    for a in &req.link_args {
        if a.starts_with('@') || a.contains(",@") || a.contains("-Wl,@") {
            return Some("rustc -C link-arg naming a response file");
        }
        if a.contains("dependency-file") {
            return Some("rustc -C link-arg with its own --dependency-file");
        }
        if a.contains("-plugin") || a.starts_with("-B") || a.contains("-fuse-ld=/") || a.contains("--ld-path") {
            return Some("rustc -C link-arg naming a linker program or plugin");
        }
    }
    None
}

/// The argument that makes the linker list what it read into `file`.
pub fn dep_file_arg(file: &Path) -> OsString {
    let mut a = OsString::from("-Clink-arg=-Wl,--dependency-file=");
    a.push(file);
    a
}

/// Feed the linker's identity into the manifest key: the driver and the programs it runs, by
/// content, and the variables they read.
pub fn add_to_key(
    kb: &mut KeyBuilder,
    req: &RustcCompile,
    cwd: &Path,
    rustc: &Path,
    cfg: &Config,
) -> Result<(), &'static str> {
    let driver = match &req.linker {
        Some(l) if l.as_os_str().as_bytes().contains(&b'/') => cwd.join(l),
        Some(l) => find_on_path(l.as_os_str()).ok_or("the -C linker program is not on PATH")?,
        None => find_on_path(OsStr::new("cc")).ok_or("no cc on PATH to link with")?,
    };
    let driver = driver.canonicalize().map_err(|_| "the linker is not found")?;
    let mut files = match &cfg.compiler_check.value {
        crate::identity::CompilerCheck::Content => {
            crate::identity::programs_for(&cfg.dir.value, "linker", &driver, || {
                let _slot = crate::coordinator::slot(cfg);
                Ok(driver_programs(&driver))
            })
            .map_err(|_| "cannot ask the linker which programs it runs")?
        }
        _ => vec![("linker driver".to_string(), driver.clone())],
    };
    // rustc's own linker, used through `-fuse-ld=lld` and its gcc-ld directory.
    if let Some(sysroot) = rustc.parent().and_then(Path::parent)
        && let Ok(targets) = std::fs::read_dir(sysroot.join("lib/rustlib"))
    {
        let mut found: Vec<(String, PathBuf)> = targets
            .flatten()
            .flat_map(|t| {
                let bin = t.path().join("bin");
                let name = t.file_name().to_string_lossy().into_owned();
                [
                    (format!("{name}/rust-lld"), bin.join("rust-lld")),
                    (format!("{name}/gcc-ld/ld.lld"), bin.join("gcc-ld/ld.lld")),
                ]
            })
            .filter(|(_, p)| p.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    let id = crate::identity::of_files(&cfg.dir.value, &cfg.compiler_check.value, &files)
        .map_err(|_| "cannot read the linker's programs")?;
    kb.add_str("linker", &id);
    for name in KEYED_LINK_ENV {
        if let Some(v) = std::env::var_os(name) {
            kb.add_os(&format!("linker env {name}"), &v);
        }
    }
    Ok(())
}

fn find_on_path(name: &OsStr) -> Option<PathBuf> {
    let me = crate::locate::SelfIdentity::current();
    crate::locate::find_compiler(name, &me).ok()
}

/// The driver and the programs a cc driver (gcc or clang, or a wrapper that passes its arguments
/// on) reports for linking. A name it cannot place is looked up on PATH, as the driver would.
fn driver_programs(driver: &Path) -> Vec<(String, PathBuf)> {
    let mut files = vec![("linker driver".to_string(), driver.to_path_buf())];
    let ask = |arg: &str| -> Option<String> {
        let out = Command::new(driver)
            .arg(arg)
            .env(crate::locate::GUARD_VAR, crate::locate::guard_value())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let asks = [
        ("collect2", "-print-prog-name=collect2"),
        ("ld", "-print-prog-name=ld"),
        ("ld.bfd", "-print-prog-name=ld.bfd"),
        ("ld.gold", "-print-prog-name=ld.gold"),
        ("ld.lld", "-print-prog-name=ld.lld"),
        ("ld.mold", "-print-prog-name=ld.mold"),
        ("lto-wrapper", "-print-prog-name=lto-wrapper"),
        ("liblto_plugin.so", "-print-file-name=liblto_plugin.so"),
    ];
    for (role, arg) in asks {
        let Some(answer) = ask(arg) else { continue };
        let path = if answer.contains('/') {
            Some(PathBuf::from(&answer))
        } else {
            find_on_path(OsStr::new(&answer))
        };
        if let Some(p) = path.and_then(|p| p.canonicalize().ok())
            && p.is_file()
        {
            files.push((role.to_string(), p));
        }
    }
    files
}

/// One file the link read: as recorded (relative to the profile dir where inside it) and where it
/// is for this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInput {
    pub recorded: PathBuf,
    pub path: PathBuf,
}

/// The files a linker's dependency file lists, less rustc's own intermediate objects. `Err` when a
/// listed file is gone and is not one of those (its content cannot be recorded).
pub fn read_inputs(text: &str, cwd: &Path, out_dir: &Path, profile: Option<&Path>) -> Result<Vec<LinkInput>, String> {
    let out_dir = cwd.join(out_dir);
    let mut out = Vec::new();
    for listed in prerequisites(text)? {
        let path = cwd.join(&listed);
        if !path.exists() {
            if is_rustc_intermediate(&path, &out_dir) {
                continue;
            }
            return Err(format!("the linker read {}, which is gone", listed.display()));
        }
        out.push(LinkInput {
            recorded: record(&listed, profile),
            path,
        });
    }
    Ok(out)
}

/// The prerequisites of the first rule of a make-style dependency file (as GNU ld and lld write
/// it: `out: \` then one input a line, `\ ` for a space, `$$` for `$`).
fn prerequisites(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut joined = String::new();
    for line in text.lines() {
        if let Some(l) = line.strip_suffix('\\')
            && !l.ends_with('\\')
        {
            joined.push_str(l);
            joined.push(' ');
        } else {
            joined.push_str(line);
            break;
        }
    }
    // The target ends at the first unescaped ": ".
    let mut words = Vec::new();
    let mut cur = Vec::new();
    let mut chars = joined.bytes().peekable();
    while let Some(c) = chars.next() {
        match c {
            b'\\' if chars.peek().is_some_and(|n| *n == b' ' || *n == b'#' || *n == b'\\') => {
                cur.push(chars.next().unwrap_or(b'\\'));
            }
            b'$' if chars.peek() == Some(&b'$') => {
                chars.next();
                cur.push(b'$');
            }
            b' ' | b'\t' => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let start = words
        .iter()
        .position(|w| w.ends_with(b":"))
        .ok_or("the linker's dependency file has no rule")?;
    Ok(words[start + 1..]
        .iter()
        .map(|w| PathBuf::from(OsString::from_vec(w.clone())))
        .collect())
}

/// rustc's codegen units in the out dir (`<crate>.<hash>-cgu.0.rcgu.o`) and the files of its temp
/// dir there (`<out dir>/rustcXXXXXX/symbols.o`, `…/raw-dylibs/…`), which it removes before it exits.
fn is_rustc_intermediate(path: &Path, out_dir: &Path) -> bool {
    let Some(dir) = path.parent() else { return false };
    let is_cgu = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".rcgu.o"));
    (dir == out_dir && is_cgu)
        || dir.ancestors().any(|a| {
            a.parent() == Some(out_dir) && a.file_name().is_some_and(|d| d.to_string_lossy().starts_with("rustc"))
        })
}

fn record(listed: &Path, profile: Option<&Path>) -> PathBuf {
    match profile.and_then(|p| listed.strip_prefix(p).ok()) {
        Some(rest) => {
            let mut v = PROFILE_MARK.to_vec();
            v.push(b'/');
            v.extend_from_slice(rest.as_os_str().as_bytes());
            PathBuf::from(OsString::from_vec(v))
        }
        None => listed.to_path_buf(),
    }
}

/// Where a recorded input is for this call; `None` when it names the profile dir and this call
/// has none.
pub fn locate(recorded: &Path, cwd: &Path, profile: Option<&Path>) -> Option<PathBuf> {
    let bytes = recorded.as_os_str().as_bytes();
    match bytes.strip_prefix(PROFILE_MARK) {
        Some(rest) => {
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            Some(cwd.join(profile?).join(OsStr::from_bytes(rest)))
        }
        None => Some(cwd.join(recorded)),
    }
}

/// Do all recorded linker inputs still have their digests?
pub fn inputs_match(
    link: &[(PathBuf, String)],
    cwd: &Path,
    bases: &super::bases::RustBases,
    profile: Option<&Path>,
    hashes: &mut HashCache,
) -> bool {
    link.iter().all(|(recorded, digest)| {
        // Stored with base marks (bases.rs): this build's paths first.
        let recorded = PathBuf::from(std::ffi::OsStr::from_bytes(
            &bases.restore_text(recorded.as_os_str().as_bytes()),
        ));
        locate(&recorded, cwd, profile).is_some_and(|p| hashes.digest(&p).as_ref() == Some(digest))
    })
}

/// Did the linker refuse the dependency-file option (an ld before 2.35, gold)?
pub fn rejected_dep_file(stderr: &[u8]) -> bool {
    crate::paths::contains(stderr, b"dependency-file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lld_and_bfd_dependency_files() {
        let lld = "m1: \\\n /usr/lib/x86_64-linux-gnu/Scrt1.o \\\n /tmp/rustcAb12/symbols.o \\\n \
            m1.m.f19d-cgu.0.rcgu.o \\\n /w/t/debug/deps/libfoo-1.rlib \\\n my\\ dir/s.ld\n\n\
            /usr/lib/x86_64-linux-gnu/Scrt1.o:\n\n";
        assert_eq!(
            prerequisites(lld).unwrap(),
            [
                "/usr/lib/x86_64-linux-gnu/Scrt1.o",
                "/tmp/rustcAb12/symbols.o",
                "m1.m.f19d-cgu.0.rcgu.o",
                "/w/t/debug/deps/libfoo-1.rlib",
                "my dir/s.ld"
            ]
            .map(PathBuf::from)
        );
        let bfd = "m5: \\\n  s.ld \\\n  v.map \\\n  /lib/x86_64-linux-gnu/libc.so.6\n\ns.ld:\n";
        assert_eq!(
            prerequisites(bfd).unwrap(),
            ["s.ld", "v.map", "/lib/x86_64-linux-gnu/libc.so.6"].map(PathBuf::from)
        );
        assert!(prerequisites("").is_err());
    }

    #[test]
    fn refusals() {
        let req = |s: &str| {
            let args: Vec<OsString> = s.split(' ').map(OsString::from).collect();
            crate::compiler::rustc::parse(&args).unwrap()
        };
        let why = |s: &str| refusal(&req(&format!("--crate-name a --crate-type bin {s} a.rs")));
        assert_eq!(
            why("-C lto=fat").unwrap(),
            "rustc -C lto (rustc, not the linker, reads the dependency crates)"
        );
        assert!(why("-C lto").is_some() && why("-C lto=thin").is_some());
        assert_eq!(why("-C lto=off"), None);
        assert_eq!(why("-C opt-level=3 -C linker-plugin-lto"), None);
        assert!(why("-C linker=/usr/bin/ld.lld").is_some() && why("-C linker=x86_64-linux-gnu-ld").is_some());
        assert_eq!(why("-C linker=x86_64-linux-gnu-gcc"), None);
        assert!(why("--target aarch64-apple-darwin").is_some());
        assert!(why("-C link-arg=-Wl,@rsp").is_some() && why("-C link-arg=-fuse-ld=/opt/ld").is_some());
    }

    #[test]
    fn intermediates_are_rustcs_own() {
        let out = Path::new("/w/t/deps");
        assert!(is_rustc_intermediate(Path::new("/w/t/deps/rustcAb12/symbols.o"), out));
        assert!(is_rustc_intermediate(
            Path::new("/w/t/deps/app-1.app.9f-cgu.0.rcgu.o"),
            out
        ));
        assert!(is_rustc_intermediate(
            Path::new("/w/./t/deps/x.rcgu.o"),
            Path::new("/w/t/deps/.")
        ));
        assert!(is_rustc_intermediate(
            Path::new("/w/t/deps/rustcAb12/raw-dylibs/libx.so"),
            out
        ));
        assert!(!is_rustc_intermediate(Path::new("/w/lib/x.rcgu.o"), out));
        assert!(!is_rustc_intermediate(Path::new("/tmp/rustcAb12/symbols.o"), out));
        assert!(!is_rustc_intermediate(Path::new("/usr/lib/libz.a"), out));
    }

    #[test]
    fn profile_paths_round_trip() {
        let p = Path::new("/w/t1/debug");
        let r = record(Path::new("/w/t1/debug/deps/libfoo-1.rlib"), Some(p));
        assert!(r.as_os_str().as_bytes().starts_with(PROFILE_MARK));
        assert_eq!(
            locate(&r, Path::new("/"), Some(Path::new("/w/t2/debug"))),
            Some(PathBuf::from("/w/t2/debug/deps/libfoo-1.rlib"))
        );
        assert_eq!(locate(&r, Path::new("/"), None), None);
        let sys = record(Path::new("/usr/lib/libc.so"), Some(p));
        assert_eq!(
            locate(&sys, Path::new("/w"), Some(p)),
            Some(PathBuf::from("/usr/lib/libc.so"))
        );
    }
}
