//! NVIDIA's CUDA compiler driver, nvcc: the argument table and the parse of one call into a
//! `CCompile`, or the reason it is not cacheable. nvcc runs the host compiler's preprocessor once
//! per pass (host, and each device architecture), cicc, ptxas and fatbinary per architecture, and
//! the host compiler last; cachepot caches the whole call (see the README's "nvcc" section for why
//! not per stage). What the key covers:
//! - nvcc's identity: the driver, nvcc.profile, cudafe++, cicc, ptxas, fatbinary and libdevice, by
//!   content (`programs`);
//! - the host compiler's identity (what `-ccbin`, `NVCC_CCBIN` or PATH selects), by content
//!   (`companion_compilers`);
//! - every code-generation option as written (`-gencode`, `-arch`, `-code`, `-Xptxas`, …), and
//!   `NVCC_PREPEND_FLAGS`/`NVCC_APPEND_FLAGS` parsed as nvcc adds them;
//! - the sources of every stage: nvcc's own dependency output (`-MD`) merges the host pass and
//!   every device pass, so a header read only under `__CUDA_ARCH__ >= 900` is in it. `nvcc -E`
//!   preprocesses one pass only, so nvcc has no preprocessor mode: a call that would need one
//!   (`-MMD`, `__DATE__`, direct mode off) is passed through.

use super::{CCompile, CFamily, ColorChoice, DepStyle, NotCacheable, Output};
use crate::config::Config;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What a flag means for the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Compile to an object or a device file with this extension (-c, -dc, --ptx, …).
    Mode(&'static str),
    Link,
    PreprocessOnly,
    DepOnly,
    /// -MD / -MMD.
    DepGen,
    DepFile,
    /// -MT (hashed: it names the dependency file's target), -MP.
    DepOption,
    OutputFile,
    Language,
    /// -I / -isystem (the flag says which list).
    IncludeDir(&'static str),
    IncludeFile,
    /// -ccbin: the host compiler, keyed by content, not by its path.
    HostCompiler,
    /// -Xcompiler: options for the host compiler (checked for ones that write files).
    HostOptions,
    /// `-arch`/`-code`/`-gencode`: `native` means this machine's GPU.
    GpuArch,
    Debug,
    Plain,
    Informational,
    ExtraOutputs(&'static str),
    TooHard(&'static str),
}

use Kind::*;

/// One row: nvcc's short and long spellings, whether it takes a value, and whether the value may
/// be joined to the short name (`-Iinc`, `-DX`, `-O3`). Every value may also follow `=` (`-o=x`,
/// `--output-file=x`) or be the next argument.
struct Flag {
    short: &'static str,
    long: &'static str,
    value: bool,
    joined: bool,
    kind: Kind,
}

const fn flag(short: &'static str, long: &'static str, kind: Kind) -> Flag {
    Flag {
        short,
        long,
        value: false,
        joined: false,
        kind,
    }
}

const fn valued(short: &'static str, long: &'static str, kind: Kind) -> Flag {
    Flag {
        short,
        long,
        value: true,
        joined: false,
        kind,
    }
}

const fn joined(short: &'static str, long: &'static str, kind: Kind) -> Flag {
    Flag {
        short,
        long,
        value: true,
        joined: true,
        kind,
    }
}

/// nvcc's options (CUDA 13 `nvcc --help`), each with its effect on the cache.
static TABLE: &[Flag] = &[
    flag("-c", "--compile", Mode("o")),
    flag("-dc", "--device-c", Mode("o")),
    flag("-dw", "--device-w", Mode("o")),
    flag("-cubin", "--cubin", Mode("cubin")),
    flag("-ptx", "--ptx", Mode("ptx")),
    flag("-fatbin", "--fatbin", Mode("fatbin")),
    flag("-cuda", "--cuda", TooHard("--cuda")),
    flag("-optix-ir", "--optix-ir", TooHard("--optix-ir")),
    flag("-ltoir", "--ltoir", TooHard("--ltoir")),
    flag("-dlink", "--device-link", Link),
    flag("-link", "--link", Link),
    flag("-lib", "--lib", Link),
    flag("-run", "--run", Link),
    flag("-E", "--preprocess", PreprocessOnly),
    flag("-M", "--generate-dependencies", DepOnly),
    flag("-MM", "--generate-nonsystem-dependencies", DepOnly),
    flag("-MD", "--generate-dependencies-with-compile", DepGen),
    flag("-MMD", "--generate-nonsystem-dependencies-with-compile", DepGen),
    valued("-MF", "--dependency-output", DepFile),
    flag("-MP", "--generate-dependency-targets", DepOption),
    valued("-MT", "--dependency-target-name", DepOption),
    valued("-o", "--output-file", OutputFile),
    valued("-x", "--x", Language),
    joined("-I", "--include-path", IncludeDir("-I")),
    valued("-isystem", "--system-include", IncludeDir("-isystem")),
    valued("-include", "--pre-include", IncludeFile),
    joined("-D", "--define-macro", Plain),
    joined("-U", "--undefine-macro", Plain),
    joined("-l", "--library", Plain),
    joined("-L", "--library-path", Plain),
    joined("-O", "--optimize", Plain),
    valued("-ccbin", "--compiler-bindir", HostCompiler),
    valued("-Xcompiler", "--compiler-options", HostOptions),
    valued("-Xptxas", "--ptxas-options", Plain),
    valued("-Xlinker", "--linker-options", Plain),
    valued("-Xnvlink", "--nvlink-options", Plain),
    valued("-Xarchive", "--archive-options", Plain),
    valued("-Xfatbin", "--fatbin-options", Plain),
    valued("-Xcudafe", "--cudafe-options", Plain),
    valued("-arch", "--gpu-architecture", GpuArch),
    valued("-code", "--gpu-code", GpuArch),
    valued("-gencode", "--generate-code", GpuArch),
    valued("-rdc", "--relocatable-device-code", Plain),
    valued("-t", "--threads", Plain),
    valued("-split-compile", "--split-compile", Plain),
    valued("-split-compile-extended", "--split-compile-extended", Plain),
    valued("-maxrregcount", "--maxrregcount", Plain),
    valued("-std", "--std", Plain),
    valued("-stdlib", "--stdlib", Plain),
    valued("-ftz", "--ftz", Plain),
    valued("-prec-div", "--prec-div", Plain),
    valued("-prec-sqrt", "--prec-sqrt", Plain),
    valued("-fmad", "--fmad", Plain),
    valued("-default-stream", "--default-stream", Plain),
    valued("-cudart", "--cudart", Plain),
    valued("-cudadevrt", "--cudadevrt", Plain),
    valued("-dopt", "--dopt", Plain),
    valued("-m", "--machine", Plain),
    valued("-diag-suppress", "--diag-suppress", Plain),
    valued("-diag-error", "--diag-error", Plain),
    valued("-diag-warn", "--diag-warn", Plain),
    valued("-Werror", "--Werror", Plain),
    valued("-ftemplate-backtrace-limit", "--ftemplate-backtrace-limit", Plain),
    valued("-ftemplate-depth", "--ftemplate-depth", Plain),
    valued("-fmax-errors", "--fmax-errors", Plain),
    valued("-static-global-template-stub", "--static-global-template-stub", Plain),
    valued(
        "-device-entity-has-hidden-visibility",
        "--device-entity-has-hidden-visibility",
        Plain,
    ),
    valued("-brief-diagnostics", "--brief-diagnostics", Plain),
    valued("-jump-table-density", "--jump-table-density", Plain),
    valued("-device-stack-protector", "--device-stack-protector", Plain),
    valued("-compress-mode", "--compress-mode", Plain),
    valued("-frandom-seed", "--frandom-seed", Plain),
    valued("-entries", "--entries", Plain),
    valued("-optimization-info", "--optimization-info", Plain),
    flag("-g", "--debug", Debug),
    flag("-G", "--device-debug", Debug),
    // Line info names the source by its absolute path (`.file 1 "/abs/a.cu"`): keyed like debug info.
    flag("-lineinfo", "--generate-line-info", Debug),
    flag("-m64", "--m64", Plain),
    flag("-w", "--disable-warnings", Plain),
    flag("-use_fast_math", "--use_fast_math", Plain),
    flag("-shared", "--shared", Plain),
    flag("-pg", "--profile", Plain),
    flag("-noeh", "--no-exceptions", Plain),
    flag("-nohdinitlist", "--no-host-device-initializer-list", Plain),
    flag("-nohdmoveforward", "--no-host-device-move-forward", Plain),
    flag("-expt-relaxed-constexpr", "--expt-relaxed-constexpr", Plain),
    flag("-extended-lambda", "--extended-lambda", Plain),
    flag("-expt-extended-lambda", "--expt-extended-lambda", Plain),
    flag("-allow-unsupported-compiler", "--allow-unsupported-compiler", Plain),
    flag("-extra-device-vectorization", "--extra-device-vectorization", Plain),
    flag("-keep-device-functions", "--keep-device-functions", Plain),
    flag("-src-in-ptx", "--source-in-ptx", Plain),
    flag("-restrict", "--restrict", Plain),
    flag("-res-usage", "--resource-usage", Plain),
    flag("-ewp", "--extensible-whole-program", Plain),
    flag("-no-compress", "--no-compress", Plain),
    flag("-dlto", "--dlink-time-opt", Plain),
    flag("-lto", "--lto", Plain),
    flag("-gen-opt-lto", "--gen-opt-lto", Plain),
    flag("-nodlink", "--no-device-link", Plain),
    flag("-objtemp", "--objdir-as-tempdir", Plain),
    flag("-err-no", "--display-error-number", Plain),
    flag("-no-err-no", "--no-display-error-number", Plain),
    flag("-reloc-ptx", "--relocatable-ptx", Plain),
    flag("-jobserver", "--jobserver", Plain),
    flag("-utf-8", "--utf-8", Plain),
    flag("-Wno-deprecated-gpu-targets", "--Wno-deprecated-gpu-targets", Plain),
    flag("-Wno-deprecated-declarations", "--Wno-deprecated-declarations", Plain),
    flag("-Wreorder", "--Wreorder", Plain),
    flag("-Wdefault-stream-launch", "--Wdefault-stream-launch", Plain),
    flag("-Wext-lambda-captures-this", "--Wext-lambda-captures-this", Plain),
    flag("-Wmissing-launch-bounds", "--Wmissing-launch-bounds", Plain),
    flag("-noprof", "--dont-use-profile", TooHard("--dont-use-profile")),
    flag("-keep", "--keep", ExtraOutputs("--keep")),
    valued("-keep-dir", "--keep-dir", ExtraOutputs("--keep-dir")),
    flag("-save-temps", "--save-temps", ExtraOutputs("--save-temps")),
    valued("-time", "--time", ExtraOutputs("--time")),
    valued(
        "-fdevice-time-trace",
        "--fdevice-time-trace",
        ExtraOutputs("--fdevice-time-trace"),
    ),
    valued("-odir", "--output-directory", TooHard("--output-directory")),
    valued("-optf", "--options-file", TooHard("--options-file")),
    valued("-ldir", "--libdevice-directory", TooHard("--libdevice-directory")),
    valued("-target-dir", "--target-directory", TooHard("--target-directory")),
    valued("-apply-controls", "--apply-controls", TooHard("--apply-controls")),
    flag(
        "-forward-unknown-to-host-compiler",
        "--forward-unknown-to-host-compiler",
        TooHard("--forward-unknown-to-host-compiler"),
    ),
    flag(
        "-forward-unknown-opts",
        "--forward-unknown-opts",
        TooHard("--forward-unknown-opts"),
    ),
    flag(
        "-fdevice-syntax-only",
        "--fdevice-syntax-only",
        TooHard("--fdevice-syntax-only"),
    ),
    flag("-dryrun", "--dryrun", TooHard("--dryrun")),
    flag("-v", "--verbose", TooHard("--verbose")),
    flag("-v2", "--verbose2", TooHard("--verbose")),
    flag("-clean", "--clean-targets", TooHard("--clean-targets")),
    flag("-h", "--help", Informational),
    flag("-V", "--version", Informational),
    flag("-code-ls", "--list-gpu-code", Informational),
    flag("-arch-ls", "--list-gpu-arch", Informational),
];

/// Environment variables that change what nvcc produces: its own, and the host compiler's.
const KEY_ENV: &[&str] = &[
    "NVCC_PREPEND_FLAGS",
    "NVCC_APPEND_FLAGS",
    "NVCC_CCBIN",
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "SOURCE_DATE_EPOCH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
];

/// The nvcc family.
pub struct Nvcc;

pub static NVCC: Nvcc = Nvcc;

/// The family of a compiler name, if nvcc.
pub fn from_name(name: &str) -> Option<&'static dyn CFamily> {
    (name == "nvcc").then_some(&NVCC as &dyn CFamily)
}

impl CFamily for Nvcc {
    fn name(&self) -> &'static str {
        "nvcc"
    }

    /// nvcc reads no `@file` (its `--options-file` passes through): an `@x` argument is an input
    /// file name to it, and to the parser.
    fn expand_args(&self, args: &[OsString], _cwd: &Path) -> Result<Vec<OsString>, String> {
        Ok(args.to_vec())
    }

    fn parse(
        &self,
        args: &[OsString],
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<CCompile, NotCacheable> {
        // nvcc adds these as if written before and after the command line.
        let split = |v: &str| -> Vec<OsString> {
            env(v)
                .map(|s| s.to_string_lossy().split_whitespace().map(OsString::from).collect())
                .unwrap_or_default()
        };
        let mut all = split("NVCC_PREPEND_FLAGS");
        all.extend(args.iter().cloned());
        all.extend(split("NVCC_APPEND_FLAGS"));
        parse(&all, cwd)
    }

    fn key_env(&self) -> &'static [&'static str] {
        KEY_ENV
    }

    /// Only for completeness: the C flow asks nvcc for no preprocessor run
    /// (`preprocessor_mode_sound` is false), as `-E` covers one pass of several.
    fn preprocessor_mode_sound(&self) -> bool {
        false
    }

    fn included_files(&self, preprocessed: &[u8]) -> Vec<PathBuf> {
        super::gcc::linemarkers::included_files(preprocessed)
    }

    fn dependency_args(&self, listing: &Path) -> Vec<OsString> {
        vec![
            OsString::from("-MD"),
            OsString::from("-MF"),
            listing.as_os_str().to_os_string(),
        ]
    }

    /// nvcc writes a Make rule (`out.o : a.cu \`) listing the files of every pass.
    fn dependencies(&self, listing: &[u8]) -> Vec<PathBuf> {
        super::gcc::depfile::prerequisites(listing)
    }

    /// Never used: nvcc requests are parsed with an explicit colour choice (nvcc has no colour
    /// option; its output is replayed as it was).
    fn color_flag(&self) -> &'static str {
        ""
    }

    /// nvcc pre-includes `cuda_runtime.h` before the source, so the host compiler never takes a
    /// user's `.gch` in place of a header.
    fn precompiled_headers(&self, _req: &CCompile, _cwd: &Path) -> Vec<PathBuf> {
        Vec::new()
    }

    /// `-Xcompiler -march=native` would need the host compiler's answer; not cached.
    fn resolve_native(&self, _driver: &Path, _args: &[OsString]) -> Option<String> {
        None
    }

    /// The driver and what it runs, found beside it the way nvcc.profile places them (CUDA's
    /// layout: `bin/` and `nvvm/`), plus libdevice, which cicc links into device code.
    fn programs(&self, driver: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
        let mut files = vec![("driver".to_string(), driver.to_path_buf())];
        let bin = driver.parent().unwrap_or(Path::new("/"));
        let top = bin.parent().unwrap_or(Path::new("/"));
        let mut add = |role: String, p: PathBuf| {
            if let Ok(p) = p.canonicalize()
                && p.is_file()
            {
                files.push((role, p));
            }
        };
        // nvlink and bin2c take part in device linking only, not in a call cachepot caches.
        for prog in ["nvcc.profile", "cudafe++", "ptxas", "fatbinary"] {
            add(prog.to_string(), bin.join(prog));
        }
        add("cicc".to_string(), top.join("nvvm/bin/cicc"));
        if let Ok(entries) = std::fs::read_dir(top.join("nvvm/libdevice")) {
            let mut names: Vec<OsString> = entries
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| n.as_bytes().ends_with(b".bc"))
                .collect();
            names.sort();
            for n in names {
                add(
                    format!("libdevice/{}", n.to_string_lossy()),
                    top.join("nvvm/libdevice").join(&n),
                );
            }
        }
        Ok(files)
    }

    /// The host compiler nvcc runs: `-ccbin` (a file, or a directory holding `gcc`), else
    /// `NVCC_CCBIN`, else `gcc` on PATH (as nvcc on Linux does).
    fn companion_compilers(
        &self,
        req: &CCompile,
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Vec<(String, PathBuf)>, NotCacheable> {
        let given = host_compiler_arg(&req.preprocessor_args).or_else(|| env("NVCC_CCBIN").filter(|v| !v.is_empty()));
        let name = match given {
            Some(v) => {
                let p = cwd.join(&v);
                if p.is_dir() { p.join("gcc").into_os_string() } else { v }
            }
            None => OsString::from("gcc"),
        };
        let found = if Path::new(&name).components().count() > 1 {
            Ok(cwd.join(&name))
        } else {
            crate::locate::find_compiler(&name, &crate::locate::SelfIdentity::current()).map_err(|_| ())
        };
        match found {
            Ok(p) if p.is_file() => Ok(vec![("host compiler".to_string(), p)]),
            _ => Err(NotCacheable::TooHard("host compiler not found")),
        }
    }

    /// Where a new header would shadow one a compile read: the user's -I and -isystem directories,
    /// then the toolkit's include directories (nvcc adds them before the host compiler's own,
    /// which are not asked here: a header created in a system directory is not watched).
    fn shadowing_candidates(
        &self,
        real: &Path,
        _identity: &str,
        req: &CCompile,
        _cfg: &Config,
        read: &[PathBuf],
        cwd: &Path,
    ) -> Option<Vec<PathBuf>> {
        let top = real.canonicalize().ok()?.parent()?.parent()?.to_path_buf();
        let mut chain: Vec<PathBuf> = req.include_dirs.iter().map(|(_, d)| d.clone()).collect();
        chain.push(top.join("include"));
        chain.push(top.join("include/cccl"));
        Some(super::gcc::include_search::must_be_absent(read, &chain, cwd))
    }
}

/// The `-ccbin` value among the (non-key) arguments kept for the host compiler.
fn host_compiler_arg(args: &[OsString]) -> Option<OsString> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        if let Some(Ok((m, used))) = match_nvcc(args, i)
            && m.kind == HostCompiler
        {
            found = m.value;
            i += used;
            continue;
        }
        i += 1;
    }
    found
}

/// A matched option: its kind, value, and the arguments it occupied.
struct Matched {
    kind: Kind,
    value: Option<OsString>,
    raw: Vec<OsString>,
}

/// Match `args[i]` against the table: `-x`, `--long`, `-x=v`, `--long=v`, `-x v`, `--long v`,
/// and `-Xv` for the joined short forms. `None` for an unknown option.
fn match_nvcc(args: &[OsString], i: usize) -> Option<Result<(Matched, usize), String>> {
    let arg = args[i].as_bytes();
    let (name, inline) = match arg.iter().position(|&b| b == b'=') {
        Some(p) => (&arg[..p], Some(&arg[p + 1..])),
        None => (arg, None),
    };
    let exact = TABLE
        .iter()
        .find(|f| f.short.as_bytes() == name || f.long.as_bytes() == name);
    let found = match exact {
        Some(f) => Some((f, inline.map(|v| v.to_vec()))),
        // Joined short forms: `-Iinc`, `-DX=1` (the `=` belongs to the value), `-O3`.
        None => TABLE
            .iter()
            .filter(|f| f.joined && arg.starts_with(f.short.as_bytes()) && arg.len() > f.short.len())
            .max_by_key(|f| f.short.len())
            .map(|f| (f, Some(arg[f.short.len()..].to_vec()))),
    };
    let (row, inline) = found?;
    let matched = |value: Option<OsString>, raw: Vec<OsString>| Matched {
        kind: row.kind,
        value,
        raw,
    };
    if !row.value {
        if inline.is_some() {
            return Some(Err(format!("{} takes no value", row.long)));
        }
        return Some(Ok((matched(None, vec![args[i].clone()]), 1)));
    }
    if let Some(v) = inline {
        let v = OsStr::from_bytes(&v).to_os_string();
        return Some(Ok((matched(Some(v), vec![args[i].clone()]), 1)));
    }
    let Some(v) = args.get(i + 1) else {
        return Some(Err(format!("{} is missing its value", row.long)));
    };
    Some(Ok((matched(Some(v.clone()), vec![args[i].clone(), v.clone()]), 2)))
}

/// The language nvcc gives a file by its extension (`.cu` is CUDA; C and C++ go to the host
/// compiler through nvcc).
fn language_of(path: &Path) -> Option<&'static str> {
    Some(match path.extension()?.to_str()? {
        "cu" => "cu",
        "c" => "c",
        "cc" | "cpp" | "cxx" | "c++" | "C" => "c++",
        _ => return None,
    })
}

#[derive(Default)]
struct State {
    mode: Option<&'static str>,
    output: Option<OsString>,
    language: Option<String>,
    source: Option<(PathBuf, String)>,
    non_source_input: bool,
    dep_gen: Option<DepStyle>,
    dep_file: Option<OsString>,
    dep_target_given: bool,
    debug: bool,
    key_args: Vec<OsString>,
    host_args: Vec<OsString>,
    include_dirs: Vec<(&'static str, PathBuf)>,
    include_files: Vec<PathBuf>,
}

/// Parse one nvcc call (arguments after the compiler name, response files expanded).
pub fn parse(args: &[OsString], cwd: &Path) -> Result<CCompile, NotCacheable> {
    let mut s = State::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let bytes = arg.as_bytes();
        if bytes == b"-" {
            return Err(NotCacheable::StdinInput);
        }
        if bytes.first() != Some(&b'-') {
            s.add_input(arg, cwd)?;
            i += 1;
            continue;
        }
        let (m, used) = match match_nvcc(args, i) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                log::debug!(target: "nvcc", "{e}");
                return Err(NotCacheable::BadArguments);
            }
            None => {
                log::debug!(target: "nvcc", "unsupported option {}", arg.to_string_lossy());
                return Err(NotCacheable::UnsupportedOption);
            }
        };
        i += used;
        s.apply(m, cwd)?;
    }
    s.finish(cwd)
}

impl State {
    fn add_input(&mut self, arg: &OsString, cwd: &Path) -> Result<(), NotCacheable> {
        let path = PathBuf::from(arg);
        let lang = match self.language.clone().or_else(|| language_of(&path).map(str::to_string)) {
            Some(l) => l,
            None => {
                // An object or library: a link (decided in finish()) or not a source.
                self.non_source_input = true;
                return Ok(());
            }
        };
        if self.source.is_some() {
            return Err(NotCacheable::MultipleSources);
        }
        if !cwd.join(&path).is_file() {
            return Err(NotCacheable::MissingInput);
        }
        self.key_args.push(arg.clone());
        self.host_args.push(arg.clone());
        self.source = Some((path, lang));
        Ok(())
    }

    fn apply(&mut self, m: Matched, _cwd: &Path) -> Result<(), NotCacheable> {
        let value = m.value.clone().unwrap_or_default();
        let mut hashed = true;
        let mut for_host = true;
        match m.kind {
            Mode(ext) => {
                if self.mode.is_some_and(|e| e != ext) {
                    return Err(NotCacheable::TooHard("several output kinds"));
                }
                self.mode = Some(ext);
                for_host = false;
            }
            Link => return Err(NotCacheable::Linking),
            PreprocessOnly => return Err(NotCacheable::PreprocessOnly),
            DepOnly => return Err(NotCacheable::DependencyOnly),
            DepGen => {
                let system = m.raw[0] == "-MD" || m.raw[0] == "--generate-dependencies-with-compile";
                self.dep_gen = Some(if system {
                    DepStyle::UserFull
                } else {
                    DepStyle::UserWithoutSystem
                });
                for_host = false;
            }
            DepFile => {
                self.dep_file = Some(value);
                hashed = false;
                for_host = false;
            }
            DepOption => {
                if m.raw[0].as_bytes().starts_with(b"-MT") || m.raw[0].as_bytes().starts_with(b"--dependency-target") {
                    self.dep_target_given = true;
                }
                for_host = false;
            }
            OutputFile => {
                if value == "-" {
                    return Err(NotCacheable::OutputToStdout);
                }
                self.output = Some(value);
                hashed = false;
                for_host = false;
            }
            Language => {
                let v = value.to_string_lossy().into_owned();
                if !["cu", "c", "c++"].contains(&v.as_str()) {
                    return Err(NotCacheable::UnsupportedLanguage);
                }
                self.language = Some(v);
            }
            IncludeDir(which) => {
                // nvcc takes comma-separated lists.
                for d in value.as_bytes().split(|&b| b == b',').filter(|d| !d.is_empty()) {
                    self.include_dirs.push((which, PathBuf::from(OsStr::from_bytes(d))));
                }
            }
            IncludeFile => {
                for f in value.as_bytes().split(|&b| b == b',').filter(|f| !f.is_empty()) {
                    self.include_files.push(PathBuf::from(OsStr::from_bytes(f)));
                }
            }
            HostCompiler => hashed = false,
            HostOptions => {
                for o in value.as_bytes().split(|&b| b == b',') {
                    if o.starts_with(b"-M") || o.starts_with(b"-Wp,") || o.starts_with(b"-save-temps") {
                        return Err(NotCacheable::UnsupportedOption);
                    }
                    if o.ends_with(b"=native") {
                        return Err(NotCacheable::TooHard("-Xcompiler …=native"));
                    }
                    if o.starts_with(b"-g") && o != b"-g0" {
                        self.debug = true;
                    }
                }
            }
            GpuArch => {
                let v = value.as_bytes();
                if v.ends_with(b"native") || v.windows(6).any(|w| w == b"native") {
                    return Err(NotCacheable::TooHard("-arch=native"));
                }
            }
            Debug => self.debug = true,
            Plain => {}
            Informational => return Err(NotCacheable::Informational),
            ExtraOutputs(o) => return Err(NotCacheable::ExtraOutputs(o)),
            TooHard(o) => return Err(NotCacheable::TooHard(o)),
        }
        if hashed {
            self.key_args.extend(m.raw.iter().cloned());
        }
        if for_host {
            self.host_args.extend(m.raw);
        }
        Ok(())
    }

    fn finish(self, cwd: &Path) -> Result<CCompile, NotCacheable> {
        let Some(ext) = self.mode else {
            return Err(NotCacheable::Linking);
        };
        if self.non_source_input {
            return Err(NotCacheable::NonSourceInput);
        }
        if self.dep_file.is_some() && self.dep_gen.is_none() {
            // cachepot's own -MD -MF would redefine the user's -MF (nvcc warns about that).
            return Err(NotCacheable::TooHard("-MF without -MD"));
        }
        let Some((source, language)) = self.source else {
            return Err(NotCacheable::NoSource);
        };
        let object = match &self.output {
            Some(o) => PathBuf::from(o),
            None => PathBuf::from(source.file_stem().unwrap_or_default()).with_extension(ext),
        };
        let mut outputs = vec![Output {
            role: "object",
            path: object.clone(),
            optional: false,
        }];
        let mut key_args = self.key_args;
        key_args.push(OsString::from("<output kind>"));
        key_args.push(OsString::from(ext));
        if self.dep_gen.is_some() {
            let dep = match &self.dep_file {
                Some(d) => PathBuf::from(d),
                None => object.with_extension("d"),
            };
            outputs.push(Output {
                role: "dep",
                path: dep,
                optional: false,
            });
            if !self.dep_target_given {
                // The dependency file's target is the object path as written.
                key_args.push(OsString::from("<dep target>"));
                key_args.push(object.into_os_string());
            }
        }
        // Debug info and -lineinfo record the working directory (the source by its absolute path).
        let hash_cwd = self.debug.then(|| cwd.to_path_buf());
        Ok(CCompile {
            source,
            language,
            outputs,
            key_args,
            preprocessor_args: self.host_args,
            extra_inputs: Vec::new(),
            include_files: self.include_files,
            include_dirs: self.include_dirs,
            hash_cwd,
            // nvcc has no path remapping for device code (cicc is given the source's absolute path).
            path_maps: Vec::new(),
            output_path_in_key: None,
            // nvcc has no colour option: replay its output as it was, add no flag.
            color: ColorChoice::Always,
            dep_style: self.dep_gen.unwrap_or_default(),
            dep_args: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("cachepot-nvcc-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.cu"), "__global__ void k(){}").unwrap();
        std::fs::write(d.join("b.cu"), "__global__ void j(){}").unwrap();
        d
    }

    fn parse_in(d: &Path, args: &[&str]) -> Result<CCompile, NotCacheable> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args, d)
    }

    #[test]
    fn compile_with_two_gencodes() {
        let d = dir();
        let g = [
            "-c",
            "a.cu",
            "-o",
            "out/a.o",
            "-gencode",
            "arch=compute_75,code=sm_75",
            "--generate-code=arch=compute_90,code=sm_90",
            "-Iinc",
            "-I=inc2",
            "--include-path",
            "x,y",
            "-DX=1",
            "-O3",
            "-Xcompiler",
            "-fPIC,-Wall",
            "-ccbin",
            "/usr/bin/g++",
        ];
        let c = parse_in(&d, &g).unwrap();
        assert_eq!(c.outputs[0].path, PathBuf::from("out/a.o"));
        assert_eq!(c.language, "cu");
        let dirs: Vec<_> = c.include_dirs.iter().map(|(_, d)| d.to_str().unwrap()).collect();
        assert_eq!(dirs, ["inc", "inc2", "x", "y"]);
        assert!(
            c.key_args
                .iter()
                .any(|a| a == "--generate-code=arch=compute_90,code=sm_90")
        );
        assert!(c.key_args.iter().all(|a| a != "out/a.o" && a != "/usr/bin/g++"));
        assert_eq!(
            host_compiler_arg(&c.preprocessor_args),
            Some(OsString::from("/usr/bin/g++"))
        );
    }

    #[test]
    fn outputs_by_mode() {
        let d = dir();
        assert_eq!(
            parse_in(&d, &["-c", "a.cu"]).unwrap().outputs[0].path,
            PathBuf::from("a.o")
        );
        assert_eq!(
            parse_in(&d, &["-dc", "a.cu"]).unwrap().outputs[0].path,
            PathBuf::from("a.o")
        );
        assert_eq!(
            parse_in(&d, &["--ptx", "a.cu", "-arch=sm_75"]).unwrap().outputs[0].path,
            PathBuf::from("a.ptx")
        );
        assert_eq!(
            parse_in(&d, &["-cubin", "a.cu"]).unwrap().outputs[0].path,
            PathBuf::from("a.cubin")
        );
        let c = parse_in(&d, &["-c", "a.cu", "-o", "o/a.o", "-MD"]).unwrap();
        assert_eq!(c.outputs[1].path, PathBuf::from("o/a.d"));
        assert_eq!(c.dep_style, DepStyle::UserFull);
        let c = parse_in(&d, &["-c", "a.cu", "-MD", "-MF", "deps/a.d", "-MT", "t"]).unwrap();
        assert_eq!(c.outputs[1].path, PathBuf::from("deps/a.d"));
        assert!(c.key_args.iter().all(|a| a != "<dep target>"));
        assert!(parse_in(&d, &["-c", "a.cu", "-lineinfo"]).unwrap().hash_cwd.is_some());
        assert!(parse_in(&d, &["-c", "a.cu"]).unwrap().hash_cwd.is_none());
        assert_eq!(
            parse_in(&d, &["-c", "a.cu", "-MF", "x.d"]).unwrap_err(),
            NotCacheable::TooHard("-MF without -MD")
        );
        assert_eq!(
            parse_in(&d, &["-c", "a.cu", "-MMD"]).unwrap().dep_style,
            DepStyle::UserWithoutSystem
        );
        // -rdc / -G / -lineinfo / --threads are keyed.
        let c = parse_in(&d, &["-c", "a.cu", "-rdc=true", "-G", "-lineinfo", "--threads", "2"]).unwrap();
        assert!(c.hash_cwd.is_some());
        for a in ["-rdc=true", "-G", "-lineinfo", "--threads", "2"] {
            assert!(c.key_args.iter().any(|k| k == a), "{a} not keyed");
        }
    }

    #[test]
    fn every_code_generation_option_changes_the_key() {
        let d = dir();
        let base = parse_in(&d, &["-c", "a.cu"]).unwrap().key_args;
        for extra in [
            &["-arch=sm_90"][..],
            &["-code", "sm_90"],
            &["-gencode", "arch=compute_90,code=sm_90"],
            &["-Xptxas", "-v"],
            &["-Xcompiler", "-O2"],
            &["-rdc=true"],
            &["-G"],
            &["-lineinfo"],
            &["-g"],
            &["--threads", "4"],
            &["-use_fast_math"],
            &["-maxrregcount=32"],
            &["-std=c++20"],
            &["-DX"],
            &["-include", "h.h"],
        ] {
            let mut args = vec!["-c", "a.cu"];
            args.extend_from_slice(extra);
            let k = parse_in(&d, &args).unwrap().key_args;
            assert_ne!(k, base, "{extra:?} does not change the key");
        }
        // The output kind is keyed even when the output path is the same.
        let a = parse_in(&d, &["-c", "a.cu", "-o", "a.x"]).unwrap().key_args;
        let b = parse_in(&d, &["--ptx", "a.cu", "-o", "a.x"]).unwrap().key_args;
        assert_ne!(a, b);
    }

    /// Walk the table: every row that is keyed changes the key, in both spellings.
    #[test]
    fn every_keyed_row_changes_the_key() {
        let d = dir();
        let base = parse_in(&d, &["-c", "a.cu"]).unwrap().key_args;
        for row in TABLE {
            let value = match row.kind {
                GpuArch => "sm_80",
                Language => "c++",
                Plain | Debug | HostOptions | IncludeDir(_) | IncludeFile if row.value => "v1",
                Plain | Debug => "",
                _ => continue,
            };
            for name in [row.short, row.long] {
                let mut args = vec!["-c", "a.cu", name];
                if row.value {
                    args.push(value);
                }
                let got = parse_in(&d, &args).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert_ne!(got.key_args, base, "{name} does not change the key");
            }
        }
    }

    #[test]
    fn not_cacheable_reasons() {
        let d = dir();
        assert_eq!(parse_in(&d, &["a.cu", "-o", "a"]).unwrap_err(), NotCacheable::Linking);
        assert_eq!(parse_in(&d, &["a.cu", "--run"]).unwrap_err(), NotCacheable::Linking);
        assert_eq!(parse_in(&d, &["-dlink", "a.o"]).unwrap_err(), NotCacheable::Linking);
        assert_eq!(parse_in(&d, &["-E", "a.cu"]).unwrap_err(), NotCacheable::PreprocessOnly);
        assert_eq!(parse_in(&d, &["-M", "a.cu"]).unwrap_err(), NotCacheable::DependencyOnly);
        assert_eq!(
            parse_in(&d, &["-c", "a.cu", "b.cu"]).unwrap_err(),
            NotCacheable::MultipleSources
        );
        assert_eq!(
            parse_in(&d, &["-c", "nope.cu"]).unwrap_err(),
            NotCacheable::MissingInput
        );
        assert_eq!(
            parse_in(&d, &["-c", "a.cu", "-arch=native"]).unwrap_err(),
            NotCacheable::TooHard("-arch=native")
        );
        assert_eq!(
            parse_in(&d, &["-c", "a.cu", "--keep"]).unwrap_err(),
            NotCacheable::ExtraOutputs("--keep")
        );
        assert_eq!(
            parse_in(&d, &["-c", "a.cu", "--frobnicate"]).unwrap_err(),
            NotCacheable::UnsupportedOption
        );
        assert_eq!(
            parse_in(&d, &["-c", "a.cu", "-o"]).unwrap_err(),
            NotCacheable::BadArguments
        );
        assert_eq!(parse_in(&d, &["--version"]).unwrap_err(), NotCacheable::Informational);
        std::fs::write(d.join("rsp"), "-c a.cu").unwrap();
        let at = [OsString::from("@rsp")];
        assert_eq!(NVCC.expand_args(&at, &d).unwrap(), at);
        assert_eq!(
            parse_in(&d, &["-c", "a.cu", "@rsp"]).unwrap_err(),
            NotCacheable::NonSourceInput
        );
        assert_eq!(
            parse_in(&d, &["-c", "a.cu", "-Xcompiler", "-MD"]).unwrap_err(),
            NotCacheable::UnsupportedOption
        );
    }

    #[test]
    fn prepend_and_append_flags_are_parsed() {
        let d = dir();
        let env = |v: &str| (v == "NVCC_APPEND_FLAGS").then(|| OsString::from("-o  other.o -lineinfo"));
        let args: Vec<OsString> = ["-c", "a.cu"].iter().map(OsString::from).collect();
        let c = NVCC.parse(&args, &d, &env).unwrap();
        assert_eq!(c.outputs[0].path, PathBuf::from("other.o"));
        assert!(c.key_args.iter().any(|a| a == "-lineinfo"));
    }
}
