//! rustc's command line as a typed request: crate name and types, what `--emit` asks for, where the
//! outputs go, the crates and native libraries it reads, and the arguments that go into the key —
//! or "not cacheable: <reason>". Also the dep-info (`.d`) reader the rustc flow builds its
//! manifests from. What to do with the request lives in `rust/`; this file only understands words.
//!
//! Paths are kept out of the key where the output does not depend on them: `--out-dir`, the
//! `-L dependency=` directory and `--extern` paths (their files are hashed by content instead), and
//! `-L native=` directories inside the build's profile directory (written relative to it), so that
//! two target directories of one checkout share entries.

use super::NotCacheable;
use super::args::{Flag, ValueStyle, match_flag};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Changes the output; goes into the key as written.
    Key,
    CrateName,
    CrateType,
    Emit,
    OutDir,
    Extern,
    LibPath,
    LinkLib,
    Codegen,
    Target,
    /// `--test`: a test harness binary.
    Test,
    /// `-vV`, `--print`, `--help`, `--explain`: a question, not a compile.
    Query,
    Uncacheable(&'static str),
}

use ValueStyle::{JoinedOrSeparate as Jos, None as Bare};

macro_rules! flags {
    ($(($name:expr, $style:expr, $kind:expr)),* $(,)?) => {
        &[$(Flag { name: $name, style: $style, kind: $kind }),*]
    };
}

/// Every rustc flag we understand. An unknown flag makes the call not cacheable: it may write a
/// file or change the output in a way the key does not see.
const TABLE: &[Flag<Kind>] = flags![
    ("--crate-name", Jos, Kind::CrateName),
    ("--crate-type", Jos, Kind::CrateType),
    ("--emit", Jos, Kind::Emit),
    ("--out-dir", Jos, Kind::OutDir),
    ("--extern", Jos, Kind::Extern),
    ("-L", Jos, Kind::LibPath),
    ("-l", Jos, Kind::LinkLib),
    ("-C", Jos, Kind::Codegen),
    ("--codegen", Jos, Kind::Codegen),
    ("--target", Jos, Kind::Target),
    ("--cfg", Jos, Kind::Key),
    ("--check-cfg", Jos, Kind::Key),
    ("--edition", Jos, Kind::Key),
    ("-A", Jos, Kind::Key),
    ("-W", Jos, Kind::Key),
    ("-D", Jos, Kind::Key),
    ("-F", Jos, Kind::Key),
    ("--allow", Jos, Kind::Key),
    ("--warn", Jos, Kind::Key),
    ("--deny", Jos, Kind::Key),
    ("--forbid", Jos, Kind::Key),
    ("--force-warn", Jos, Kind::Key),
    ("--cap-lints", Jos, Kind::Key),
    ("--error-format", Jos, Kind::Key),
    ("--json", Jos, Kind::Key),
    ("--color", Jos, Kind::Key),
    ("--diagnostic-width", Jos, Kind::Key),
    ("--remap-path-prefix", Jos, Kind::Key),
    ("-g", Bare, Kind::Key),
    ("-O", Bare, Kind::Key),
    ("-v", Bare, Kind::Key),
    ("--verbose", Bare, Kind::Key),
    ("-o", Jos, Kind::Uncacheable("rustc -o (explicit output file)")),
    ("--sysroot", Jos, Kind::Uncacheable("rustc --sysroot")),
    ("--test", Bare, Kind::Test),
    ("-Z", Jos, Kind::Uncacheable("rustc -Z (unstable option)")),
    ("--print", Jos, Kind::Query),
    ("-V", Bare, Kind::Query),
    ("-vV", Bare, Kind::Query),
    ("--version", Bare, Kind::Query),
    ("-h", Bare, Kind::Query),
    ("--help", Bare, Kind::Query),
    ("--explain", Jos, Kind::Query),
];

/// What `--emit` asks for (only the kinds we cache).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Emit {
    pub link: bool,
    pub metadata: bool,
    pub dep_info: bool,
}

/// A crate named to the compile with `--extern`: its file is hashed by content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extern {
    /// `[modifiers:]name`, as written.
    pub name: String,
    pub path: Option<PathBuf>,
}

/// A native library named with `-l`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeLib {
    /// `static`, `dylib`, `framework` or empty, without modifiers.
    pub kind: String,
    pub name: String,
}

/// A library crate compile that may be cached.
#[derive(Debug, Clone)]
pub struct RustcCompile {
    pub crate_name: String,
    pub extra_filename: String,
    pub input: PathBuf,
    pub emit: Emit,
    /// `rlib` (from `lib`/`rlib`) and/or `staticlib`.
    pub rlib: bool,
    pub staticlib: bool,
    /// An executable: `bin`, or a `--test` harness.
    pub bin: bool,
    /// A shared object: `proc-macro`, `dylib` or `cdylib`.
    pub shared: bool,
    /// `--target`, as written.
    pub target: Option<String>,
    /// `-C linker`, `-C linker-flavor`, and every `-C link-arg`/`-C link-args` word, in order.
    pub linker: Option<PathBuf>,
    pub linker_flavor: Option<String>,
    pub link_args: Vec<String>,
    /// Where outputs go, as given (cwd when absent).
    pub out_dir: PathBuf,
    pub externs: Vec<Extern>,
    /// `-L` directories for native libraries, in order.
    pub native_dirs: Vec<PathBuf>,
    pub native_libs: Vec<NativeLib>,
    /// A `--target` spec file (a path ending in `.json`), hashed by content.
    pub target_spec: Option<PathBuf>,
    /// Arguments for the key, with paths that do not change the output taken out or made relative.
    pub key_args: Vec<String>,
}

/// One output file: its role in entries and its path for this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustOutput {
    pub role: &'static str,
    pub path: PathBuf,
}

impl RustcCompile {
    /// The files rustc writes for this request, named as rustc names them.
    pub fn outputs(&self) -> Vec<RustOutput> {
        // (Linux names: `link::refusal` refuses linking for other targets.)
        let stem = format!("{}{}", self.crate_name, self.extra_filename);
        let mut out = Vec::new();
        let mut add = |role, name: String| {
            out.push(RustOutput {
                role,
                path: self.out_dir.join(name),
            })
        };
        if self.emit.link && self.rlib {
            add("rlib", format!("lib{stem}.rlib"));
        }
        if self.emit.link && self.staticlib {
            add("staticlib", format!("lib{stem}.a"));
        }
        if self.emit.link && self.bin {
            add("executable", stem.clone());
        }
        if self.emit.link && self.shared {
            add("shared-object", format!("lib{stem}.so"));
        }
        if self.emit.metadata {
            add("rmeta", format!("lib{stem}.rmeta"));
        }
        if self.emit.dep_info {
            add("dep-info", format!("{stem}.d"));
        }
        out
    }

    /// Does this compile run the linker?
    pub fn links(&self) -> bool {
        self.emit.link && (self.bin || self.shared)
    }
}

/// Is this compiler name rustc (or clippy's driver, which cargo runs in its place)?
pub fn is_rustc_name(name: &str) -> bool {
    name == "rustc" || name == "clippy-driver"
}

/// Why a rustc call is passed through without the cache: a question to rustc (`-vV`, `--print`),
/// or a compile we do not cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Query,
    NotCacheable(NotCacheable),
}

fn too_hard(what: &'static str) -> Refusal {
    Refusal::NotCacheable(NotCacheable::TooHard(what))
}

/// Parse a rustc command line.
pub fn parse(args: &[OsString]) -> Result<RustcCompile, Refusal> {
    let mut crate_name = None;
    let mut crate_types = Vec::new();
    let mut emit = Emit::default();
    let mut out_dir = None;
    let mut input = None;
    let mut externs = Vec::new();
    let mut lib_paths: Vec<(String, PathBuf)> = Vec::new();
    let mut native_libs = Vec::new();
    let mut target_spec = None;
    let mut extra_filename = String::new();
    let mut test = false;
    let mut target = None;
    let mut linker = None;
    let mut linker_flavor = None;
    let mut link_args = Vec::new();
    // Key arguments that mention paths are finished once the out dir is known.
    let mut key_args: Vec<KeyArg> = Vec::new();
    let mut stdin = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        if arg.starts_with(b"@") {
            return Err(too_hard("rustc @argument file"));
        }
        if arg == b"-" {
            // Keep reading: cargo's probes read `-` and ask `--print`, which makes them queries.
            stdin = true;
            i += 1;
            continue;
        }
        if !arg.starts_with(b"-") {
            if input.is_some() {
                return Err(Refusal::NotCacheable(NotCacheable::MultipleSources));
            }
            input = Some(PathBuf::from(&args[i]));
            i += 1;
            continue;
        }
        let (m, used) = match match_flag(TABLE, args, i) {
            Some(Ok(x)) => x,
            Some(Err(_)) => return Err(Refusal::NotCacheable(NotCacheable::BadArguments)),
            None => return Err(Refusal::NotCacheable(NotCacheable::UnsupportedOption)),
        };
        i += used;
        let raw_name = String::from_utf8_lossy(m.raw[0].as_bytes()).into_owned();
        let value = match &m.value {
            Some(v) => {
                let s = v.to_str().ok_or(Refusal::NotCacheable(NotCacheable::BadArguments))?;
                // `--crate-name=x` arrives as the joined value `=x`.
                let s = if raw_name.starts_with("--") && used == 1 {
                    s.strip_prefix('=')
                        .ok_or(Refusal::NotCacheable(NotCacheable::UnsupportedOption))?
                } else {
                    s
                };
                s.to_string()
            }
            None => String::new(),
        };
        let flag = flag_name(&m.raw[0], m.kind);
        match m.kind {
            Kind::Query => return Err(Refusal::Query),
            Kind::Uncacheable(why) => return Err(too_hard(why)),
            Kind::Key => key_args.push(KeyArg::Plain(format!("{flag} {value}"))),
            Kind::CrateName => {
                crate_name = Some(value.clone());
                key_args.push(KeyArg::Plain(format!("--crate-name {value}")));
            }
            Kind::CrateType => {
                for t in value.split(',') {
                    crate_types.push(t.to_string());
                }
                key_args.push(KeyArg::Plain(format!("--crate-type {value}")));
            }
            Kind::Emit => {
                for part in value.split(',') {
                    if part.contains('=') {
                        return Err(too_hard("rustc --emit with an explicit path"));
                    }
                    match part {
                        "link" => emit.link = true,
                        "metadata" => emit.metadata = true,
                        "dep-info" => emit.dep_info = true,
                        _ => return Err(too_hard("rustc --emit of asm, llvm-ir, llvm-bc, obj or mir")),
                    }
                }
                key_args.push(KeyArg::Plain(format!("--emit {value}")));
            }
            Kind::OutDir => out_dir = Some(PathBuf::from(value)),
            Kind::Extern => {
                let (name, path) = match value.split_once('=') {
                    Some((n, p)) => (n.to_string(), Some(PathBuf::from(p))),
                    None => (value.clone(), None),
                };
                key_args.push(KeyArg::Plain(format!("--extern {name}")));
                externs.push(Extern { name, path });
            }
            Kind::LibPath => {
                let (kind, path) = match value.split_once('=') {
                    Some((k, p)) if ["native", "crate", "dependency", "framework", "all"].contains(&k) => {
                        (k.to_string(), PathBuf::from(p))
                    }
                    _ => (String::new(), PathBuf::from(&value)),
                };
                if kind != "dependency" && kind != "crate" {
                    key_args.push(KeyArg::LibPath(kind.clone(), path.clone()));
                } else {
                    // Crates found there are named by --extern (hashed) or by the hashes that
                    // those crates' metadata records; the directory itself changes as the build runs.
                    key_args.push(KeyArg::Plain(format!("-L {kind}=<dir>")));
                }
                lib_paths.push((kind, path));
            }
            Kind::LinkLib => {
                let (kind, name) = match value.split_once('=') {
                    Some((k, n)) => (k.split(':').next().unwrap_or_default().to_string(), n),
                    None => (String::new(), value.as_str()),
                };
                let name = name.split(':').next().unwrap_or_default().to_string();
                key_args.push(KeyArg::Plain(format!("-l {value}")));
                native_libs.push(NativeLib { kind, name });
            }
            Kind::Codegen => {
                let (opt, v) = value.split_once('=').unwrap_or((value.as_str(), ""));
                match opt.replace('_', "-").as_str() {
                    "incremental" => return Err(too_hard("incremental compile (-C incremental)")),
                    "save-temps" => return Err(too_hard("rustc -C save-temps")),
                    "profile-generate" | "profile-use" | "profile-sample-use" => {
                        return Err(too_hard("rustc -C profile-*"));
                    }
                    "extra-filename" => extra_filename = v.to_string(),
                    // Split debug info writes .dwo/.dwp files beside the outputs that we do not restore.
                    "split-debuginfo" if v != "off" => return Err(too_hard("rustc -C split-debuginfo")),
                    "linker" => linker = Some(PathBuf::from(v)),
                    "linker-flavor" => linker_flavor = Some(v.to_string()),
                    "link-arg" => link_args.push(v.to_string()),
                    "link-args" => link_args.extend(v.split_whitespace().map(str::to_string)),
                    "linker-plugin-lto"
                        if !matches!(v, "" | "y" | "yes" | "on" | "true" | "n" | "no" | "off" | "false") =>
                    {
                        return Err(too_hard("rustc -C linker-plugin-lto with a plugin path"));
                    }
                    _ => {}
                }
                key_args.push(KeyArg::Plain(format!("-C {value}")));
            }
            Kind::Test => {
                test = true;
                key_args.push(KeyArg::Plain("--test".into()));
            }
            Kind::Target => {
                target = Some(value.clone());
                if value.ends_with(".json") {
                    target_spec = Some(PathBuf::from(&value));
                    key_args.push(KeyArg::Plain("--target <spec file>".into()));
                } else {
                    key_args.push(KeyArg::Plain(format!("--target {value}")));
                }
            }
        }
    }
    if stdin {
        return Err(Refusal::NotCacheable(NotCacheable::StdinInput));
    }
    let Some(input) = input else {
        return Err(Refusal::NotCacheable(NotCacheable::NoSource));
    };
    let crate_name = crate_name.ok_or(too_hard("rustc without --crate-name"))?;
    if crate_types.is_empty() && !test {
        return Err(too_hard("rustc without --crate-type"));
    }
    let (mut rlib, mut staticlib, mut bin, mut shared) = (false, false, false, false);
    for t in &crate_types {
        match t.as_str() {
            "lib" | "rlib" => rlib = true,
            "staticlib" => staticlib = true,
            "bin" => bin = true,
            "proc-macro" | "dylib" | "cdylib" => shared = true,
            _ => return Err(Refusal::NotCacheable(NotCacheable::UnsupportedOption)),
        }
    }
    if test {
        // A test harness is one executable whatever the crate types say.
        (rlib, staticlib, bin, shared) = (false, false, true, false);
    }
    if !(emit.link || emit.metadata || emit.dep_info) {
        // rustc's default is `--emit=link`.
        emit.link = true;
    }
    let out_dir = out_dir.unwrap_or_else(|| PathBuf::from("."));
    let profile_dir = profile_dir(&out_dir);
    let key_args = key_args
        .into_iter()
        .map(|k| match k {
            KeyArg::Plain(s) => s,
            KeyArg::LibPath(kind, p) => format!("-L {kind}={}", relative_to(&p, profile_dir.as_deref())),
        })
        .collect();
    let native_dirs = lib_paths
        .into_iter()
        .filter(|(k, _)| k != "dependency" && k != "crate")
        .map(|(_, p)| p)
        .collect();
    Ok(RustcCompile {
        crate_name,
        extra_filename,
        input,
        emit,
        rlib,
        staticlib,
        bin,
        shared,
        target,
        linker,
        linker_flavor,
        link_args,
        out_dir,
        externs,
        native_dirs,
        native_libs,
        target_spec,
        key_args,
    })
}

/// A command line to run elsewhere (a remote worker's input root: rust/remote.rs): every path
/// rustc reads or writes passed through `place`, and the directories and files it names that way.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Relocated {
    pub args: Vec<String>,
    /// Directories rustc searches for crates: `-L dependency=`, `crate=`, `all=` or no kind.
    pub crate_dirs: Vec<PathBuf>,
    /// Files named by `--emit KIND=PATH` (the flow's own dep-info file).
    pub emit_files: Vec<PathBuf>,
}

/// `args` relocated by `place` (given each path as written), or why that cannot be exact.
pub fn relocate(args: &[OsString], place: &dyn Fn(&str) -> String) -> Result<Relocated, &'static str> {
    let mut out = Relocated::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_str().ok_or("an argument that is not UTF-8")?;
        if !arg.starts_with('-') {
            out.args.push(place(arg));
            i += 1;
            continue;
        }
        let Some(Ok((m, used))) = match_flag(TABLE, args, i) else {
            return Err("an argument rustc's flag table does not know");
        };
        i += used;
        let raw: Vec<&str> = m.raw.iter().filter_map(|r| r.to_str()).collect();
        let Some(value) = m.value.as_ref().and_then(|v| v.to_str()) else {
            out.args.extend(raw.iter().map(|r| r.to_string()));
            continue;
        };
        // The flag as written before its value: `-L`, `--out-dir=`, `-Ldependency=` less the value.
        let (mut flag, mut value) = if used == 2 {
            (raw[0].to_string(), value)
        } else {
            (raw[0][..raw[0].len() - value.len()].to_string(), value)
        };
        if used == 1
            && flag.starts_with("--")
            && let Some(v) = value.strip_prefix('=')
        {
            flag.push('=');
            value = v;
        }
        let placed = match m.kind {
            Kind::OutDir => place(value),
            Kind::Extern => match value.split_once('=') {
                Some((name, path)) => format!("{name}={}", place(path)),
                None => value.to_string(),
            },
            Kind::LibPath => {
                let (kind, path) = match value.split_once('=') {
                    Some((k, p)) if ["native", "crate", "dependency", "framework", "all"].contains(&k) => (Some(k), p),
                    _ => (None, value),
                };
                if !matches!(kind, Some("native" | "framework")) {
                    out.crate_dirs.push(PathBuf::from(path));
                }
                match kind {
                    Some(k) => format!("{k}={}", place(path)),
                    None => place(path),
                }
            }
            Kind::Emit => value
                .split(',')
                .map(|part| match part.split_once('=') {
                    Some((k, p)) => {
                        out.emit_files.push(PathBuf::from(p));
                        format!("{k}={}", place(p))
                    }
                    None => part.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            Kind::Target if value.ends_with(".json") => return Err("a target spec file"),
            Kind::Key if flag.starts_with("--remap-path-prefix") => match value.rsplit_once('=') {
                // What is remapped is a path here; what it becomes is only text.
                Some((from, to)) => format!("{}={to}", place(from)),
                None => value.to_string(),
            },
            _ => value.to_string(),
        };
        if used == 2 {
            out.args.push(flag);
            out.args.push(placed);
        } else {
            out.args.push(format!("{flag}{placed}"));
        }
    }
    Ok(out)
}

enum KeyArg {
    Plain(String),
    LibPath(String, PathBuf),
}

/// The flag as a stable key word: `-Copt-level=3` and `-C opt-level=3` key the same.
fn flag_name(raw: &OsString, kind: Kind) -> String {
    let s = raw.to_string_lossy();
    TABLE
        .iter()
        .filter(|f| f.kind == kind && s.starts_with(f.name))
        .max_by_key(|f| f.name.len())
        .map(|f| f.name.to_string())
        .unwrap_or_else(|| s.into_owned())
}

/// The build's profile directory (`target/debug` for `target/debug/deps`), which holds everything
/// cargo writes for one profile. Paths inside it are keyed relative to it.
pub fn profile_dir(out_dir: &Path) -> Option<PathBuf> {
    let out_dir = crate::paths::normalize(out_dir);
    if out_dir.file_name()? == "deps" {
        return out_dir.parent().map(Path::to_path_buf);
    }
    // Build scripts: `<profile>/build/<unit>/`.
    let parent = out_dir.parent()?;
    if parent.file_name()? == "build" {
        return parent.parent().map(Path::to_path_buf);
    }
    None
}

/// `path` relative to `base` when inside it (`<profile>/build/x/out`), else as written.
pub fn relative_to(path: &Path, base: Option<&Path>) -> String {
    match base.and_then(|b| path.strip_prefix(b).ok()) {
        Some(rest) => format!("<profile>/{}", rest.display()),
        None => path.display().to_string(),
    }
}

/// What a dep-info file says a compile read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DepInfo {
    /// Source files, as written (relative to the cwd, or absolute).
    pub sources: Vec<PathBuf>,
    /// Environment variables read with `env!`/`option_env!`: name and value (None: unset).
    pub env: Vec<(String, Option<String>)>,
}

/// Read rustc's dep-info: every file is listed as an empty rule (`path:`), and each environment
/// variable the crate read as a `# env-dep:NAME=value` comment (value escaped: `\\`, `\n`, `\r`).
pub fn parse_dep_info(text: &str) -> DepInfo {
    let mut d = DepInfo::default();
    for line in text.lines() {
        if let Some(dep) = line.strip_prefix("# env-dep:") {
            let (name, value) = match dep.split_once('=') {
                Some((n, v)) => (n, Some(unescape_env(v))),
                None => (dep, None),
            };
            d.env.push((name.to_string(), value));
        } else if !line.starts_with('#')
            && let Some(path) = line.strip_suffix(':')
            && !path.is_empty()
        {
            d.sources.push(PathBuf::from(path.replace("\\ ", " ")));
        }
    }
    d
}

fn unescape_env(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocate_places_every_path_rustc_reads_or_writes() {
        let args: Vec<OsString> = [
            "--crate-name",
            "a",
            "--edition=2021",
            "/src/a/lib.rs",
            "--crate-type",
            "lib",
            "--emit=dep-info,metadata,link",
            "--out-dir",
            "/t/deps",
            "-L",
            "dependency=/t/deps",
            "-Lnative=/n",
            "--extern",
            "b=/t/deps/libb.rmeta",
            "--extern=c=rel/libc.rlib",
            "--remap-path-prefix=/t/debug=target/debug",
            "--emit=dep-info=/t/deps/own.d",
            "-C",
            "opt-level=1",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let r = relocate(&args, &|p: &str| {
            if p.starts_with('/') {
                format!("@R{p}")
            } else {
                p.to_string()
            }
        })
        .unwrap();
        assert_eq!(
            r.args,
            [
                "--crate-name",
                "a",
                "--edition=2021",
                "@R/src/a/lib.rs",
                "--crate-type",
                "lib",
                "--emit=dep-info,metadata,link",
                "--out-dir",
                "@R/t/deps",
                "-L",
                "dependency=@R/t/deps",
                "-Lnative=@R/n",
                "--extern",
                "b=@R/t/deps/libb.rmeta",
                "--extern=c=rel/libc.rlib",
                "--remap-path-prefix=@R/t/debug=target/debug",
                "--emit=dep-info=@R/t/deps/own.d",
                "-C",
                "opt-level=1",
            ]
        );
        assert_eq!(r.crate_dirs, [PathBuf::from("/t/deps")]);
        assert_eq!(r.emit_files, [PathBuf::from("/t/deps/own.d")]);
        let spec: Vec<OsString> = ["--target", "my.json"].iter().map(OsString::from).collect();
        assert!(relocate(&spec, &|p: &str| p.to_string()).is_err());
    }

    #[test]
    fn profile_dirs() {
        assert_eq!(profile_dir(Path::new("/t/debug/deps")), Some(PathBuf::from("/t/debug")));
        assert_eq!(
            profile_dir(Path::new("/t/release/build/foo-0123")),
            Some(PathBuf::from("/t/release"))
        );
        assert_eq!(profile_dir(Path::new("/t/out")), None);
        assert_eq!(
            profile_dir(Path::new("/w/t/debug/build/foo-12ab")),
            Some(PathBuf::from("/w/t/debug"))
        );
        assert_eq!(
            profile_dir(Path::new("/w/t/debug/deps")),
            Some(PathBuf::from("/w/t/debug"))
        );
        assert_eq!(profile_dir(Path::new("out")), None);
    }

    fn args(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    const CARGO_LIB: &str = "--crate-name memchr --edition=2021 /reg/memchr/src/lib.rs --error-format=json \
        --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type lib --emit=dep-info,metadata,link \
        -C embed-bitcode=no -C debuginfo=2 --cfg feature=\"std\" -C metadata=233d -C extra-filename=-1732 \
        --out-dir /w/target/debug/deps -L dependency=/w/target/debug/deps \
        --extern core2=/w/target/debug/deps/libcore2-11.rmeta -L native=/w/target/debug/build/x-1/out \
        -l static=foo --cap-lints allow";

    #[test]
    fn cargo_library_compile() {
        let r = parse(&args(CARGO_LIB)).unwrap();
        assert_eq!(r.crate_name, "memchr");
        assert_eq!(r.extra_filename, "-1732");
        assert_eq!(
            r.emit,
            Emit {
                link: true,
                metadata: true,
                dep_info: true
            }
        );
        let outs: Vec<_> = r.outputs().into_iter().map(|o| (o.role, o.path)).collect();
        assert_eq!(
            outs,
            vec![
                ("rlib", PathBuf::from("/w/target/debug/deps/libmemchr-1732.rlib")),
                ("rmeta", PathBuf::from("/w/target/debug/deps/libmemchr-1732.rmeta")),
                ("dep-info", PathBuf::from("/w/target/debug/deps/memchr-1732.d")),
            ]
        );
        assert_eq!(r.externs[0].name, "core2");
        assert_eq!(
            r.native_libs[0],
            NativeLib {
                kind: "static".into(),
                name: "foo".into()
            }
        );
        assert!(r.key_args.contains(&"-L native=<profile>/build/x-1/out".to_string()));
        assert!(r.key_args.contains(&"--edition 2021".to_string()));
        // No key argument names the target directory.
        assert!(r.key_args.iter().all(|a| !a.contains("/w/target")), "{:?}", r.key_args);
    }

    #[test]
    fn two_target_dirs_key_alike() {
        let a = parse(&args(CARGO_LIB)).unwrap();
        let b = parse(&args(&CARGO_LIB.replace("/w/target", "/w/t2"))).unwrap();
        assert_eq!(a.key_args, b.key_args);
    }

    #[test]
    fn joined_and_separate_forms_key_alike() {
        let a = parse(&args("--crate-name x --crate-type lib -Copt-level=3 a.rs")).unwrap();
        let b = parse(&args("--crate-name=x --crate-type=lib -C opt-level=3 a.rs")).unwrap();
        assert_eq!(a.key_args, b.key_args);
    }

    #[test]
    fn refusals() {
        let nc = |s: &str| match parse(&args(s)) {
            Err(Refusal::NotCacheable(r)) => r.detail().unwrap_or(r.id()).to_string(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(parse(&args("-vV")).unwrap_err(), Refusal::Query);
        assert_eq!(
            parse(&args("- --crate-name ___ --print=file-names --crate-type bin")).unwrap_err(),
            Refusal::Query
        );
        assert_eq!(
            parse(&args("--crate-name a --crate-type lib -")).unwrap_err(),
            Refusal::NotCacheable(NotCacheable::StdinInput)
        );
        assert_eq!(parse(&args("--print sysroot")).unwrap_err(), Refusal::Query);
        assert_eq!(
            nc("--crate-name a --crate-type bin -C linker-plugin-lto=/p/plugin.so a.rs"),
            "rustc -C linker-plugin-lto with a plugin path"
        );
        assert_eq!(
            nc("--crate-name a --crate-type lib -C incremental=/t/inc a.rs"),
            "incremental compile (-C incremental)"
        );
        assert_eq!(
            nc("--crate-name a --crate-type lib --emit=asm a.rs"),
            "rustc --emit of asm, llvm-ir, llvm-bc, obj or mir"
        );
        assert_eq!(nc("--crate-name a --crate-type lib --bogus a.rs"), "unsupported_option");
        assert_eq!(nc("--crate-type lib a.rs"), "rustc without --crate-name");
        assert_eq!(
            nc("--crate-name a --crate-type lib -C split-debuginfo=unpacked a.rs"),
            "rustc -C split-debuginfo"
        );
    }

    #[test]
    fn linked_crate_types() {
        let outs = |s: &str| {
            let r = parse(&args(s)).unwrap();
            let o: Vec<_> = r.outputs().into_iter().map(|o| (o.role, o.path)).collect();
            (r.links(), o)
        };
        let d = "--emit=dep-info,link -C extra-filename=-9 --out-dir o a.rs";
        assert_eq!(
            outs(&format!("--crate-name app --crate-type bin {d}")),
            (
                true,
                vec![
                    ("executable", PathBuf::from("o/app-9")),
                    ("dep-info", PathBuf::from("o/app-9.d"))
                ]
            )
        );
        for t in ["proc-macro", "dylib", "cdylib"] {
            let (links, o) = outs(&format!("--crate-name m --crate-type {t} {d}"));
            assert!(links);
            assert_eq!(o[0], ("shared-object", PathBuf::from("o/libm-9.so")));
        }
        // A test harness is an executable whatever the crate type; `cargo check` of a bin links nothing.
        let (links, o) = outs(&format!("--crate-name lib --crate-type lib --test {d}"));
        assert!(links && o[0] == ("executable", PathBuf::from("o/lib-9")) && o.len() == 2);
        let (links, o) = outs("--crate-name app --crate-type bin --emit=dep-info,metadata --out-dir o a.rs");
        assert!(!links && o[0] == ("rmeta", PathBuf::from("o/libapp.rmeta")));
        let mut a = args("--crate-name a --crate-type bin -C linker=/x/cc -C link-arg=-Tl.ld -C");
        a.extend(["link-args=-a -b".into(), "a.rs".into()]);
        let r = parse(&a).unwrap();
        assert_eq!(r.linker, Some(PathBuf::from("/x/cc")));
        assert_eq!(r.link_args, ["-Tl.ld", "-a", "-b"]);
    }

    #[test]
    fn every_key_flag_changes_the_key() {
        let base = parse(&args("--crate-name a --crate-type lib a.rs")).unwrap().key_args;
        for extra in [
            "--cfg x",
            "-C opt-level=3",
            "--edition 2021",
            "-A warnings",
            "--target x86_64-unknown-linux-musl",
            "-g",
            "-O",
            "--cap-lints allow",
            "--error-format json",
        ] {
            let with = parse(&args(&format!("--crate-name a --crate-type lib {extra} a.rs")))
                .unwrap()
                .key_args;
            assert_ne!(base, with, "{extra}");
        }
    }

    #[test]
    fn dep_info() {
        let text = "/t/deps/a-1.d: src/lib.rs src/my\\ mod.rs /t/build/a/out/gen.rs\n\n\
            /t/deps/liba-1.rlib: src/lib.rs\n\nsrc/lib.rs:\nsrc/my\\ mod.rs:\n/t/build/a/out/gen.rs:\n\n\
            # env-dep:CARGO_PKG_NAME=a\n# env-dep:OUT_DIR=/t/build/a/out\n# env-dep:MISSING\n# env-dep:ML=x\\ny\n";
        let d = parse_dep_info(text);
        assert_eq!(
            d.sources,
            vec![
                PathBuf::from("src/lib.rs"),
                PathBuf::from("src/my mod.rs"),
                PathBuf::from("/t/build/a/out/gen.rs")
            ]
        );
        assert_eq!(
            d.env,
            vec![
                ("CARGO_PKG_NAME".into(), Some("a".into())),
                ("OUT_DIR".into(), Some("/t/build/a/out".into())),
                ("MISSING".into(), None),
                ("ML".into(), Some("x\ny".into())),
            ]
        );
    }
}
