//! gcc and clang (C, C++, Objective-C, assembler): the argument table and the parse of one call
//! into a `CCompile`, or the reason it is not cacheable. Each flag's row says what it means for
//! the cache: an output, a dependency-file option, an input file to hash, a plain flag that is
//! hashed as it is, or "too hard" (the call is passed through). `Gcc` is the family behind the
//! `CFamily` trait; `include_search.rs` (where the compiler looks for headers), `depfile.rs`
//! (Make-style dependency files) and `linemarkers.rs` (the preprocessor's `# 1 "file"` lines) are
//! its parts.

pub mod depfile;
pub mod include_search;
pub mod linemarkers;

use super::args::{Flag, ValueStyle::*, match_flag};
use super::{CCompile, CFamily, ColorChoice, DepStyle, NotCacheable, Output};
use crate::config::Config;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CompileOnly,
    AssembleOnly,
    PreprocessOnly,
    Output,
    Language,
    /// -MD / -MMD: write a dependency file as a side effect.
    DepGen,
    DepFile,
    /// -MT / -MQ: names the dependency target; hashed.
    DepTarget,
    /// -MP, -MG: change the dependency file's content; hashed.
    DepOption,
    /// -M / -MM without -MD: dependency output instead of compiling.
    DepOnly,
    Wp,
    Xpreprocessor,
    /// -Xclang: passed to clang's cc1 as it is; `-Xclang -include-pch -Xclang FILE` names a
    /// precompiled header read (keyed by content, like -include-pch).
    Xclang,
    Wa,
    /// -I, -isystem, -iquote, -idirafter (the flag name says which list).
    IncludeDir(&'static str),
    /// -include / -imacros: a file read before the source (listed in the dependency output and in
    /// the preprocessor's line markers like any header).
    IncludeFile,
    /// A file whose content changes the output but does not pass through the preprocessor.
    InputFile,
    /// A flag without a value that reads a file of a default name in the working directory
    /// (clang's `-fprofile-instr-use`: `default.profdata`; gcc's `-fauto-profile`: `fbdata.afdo`).
    DefaultInputFile(&'static str),
    Plain,
    Debug,
    NoDebug,
    SplitDwarf,
    /// Coverage/profiling instrumentation: the object embeds the absolute path of its .gcda.
    Coverage,
    /// -ftest-coverage / --coverage also write a .gcno beside the object.
    CoverageNotes,
    PrefixMap,
    Color(ColorChoice),
    DiagnosticsColor,
    /// A question to the compiler, not a compile.
    Informational,
    /// Writes files the cache does not keep (the option named).
    ExtraOutputs(&'static str),
    TooHard(&'static str),
}

use Kind::*;

const fn f(name: &'static str, style: super::args::ValueStyle, kind: Kind) -> Flag<Kind> {
    Flag { name, style, kind }
}

/// The gcc/clang flag table. Exact names win over prefixes; among prefixes the longest wins.
static TABLE: &[Flag<Kind>] = &[
    f("-c", None, CompileOnly),
    f("-S", None, AssembleOnly),
    f("-E", None, PreprocessOnly),
    f("-o", JoinedOrSeparate, Output),
    f("-x", JoinedOrSeparate, Language),
    f("-MD", None, DepGen),
    f("-MMD", None, DepGen),
    f("-MF", JoinedOrSeparate, DepFile),
    f("-MT", JoinedOrSeparate, DepTarget),
    f("-MQ", JoinedOrSeparate, DepTarget),
    f("-MP", None, DepOption),
    f("-MG", None, DepOption),
    f("-M", None, DepOnly),
    f("-MM", None, DepOnly),
    f("-Wp,", Joined, Wp),
    f("-Xpreprocessor", Separate, Xpreprocessor),
    f("-Wa,", Joined, Wa),
    f("-Xassembler", Separate, Plain),
    f("-Wl,", Joined, Plain),
    f("-Xlinker", Separate, Plain),
    f("-Xclang", Separate, Xclang),
    f("-I", JoinedOrSeparate, IncludeDir("-I")),
    f("-isystem", JoinedOrSeparate, IncludeDir("-isystem")),
    f("-iquote", JoinedOrSeparate, IncludeDir("-iquote")),
    f("-idirafter", JoinedOrSeparate, IncludeDir("-idirafter")),
    f("-iprefix", JoinedOrSeparate, Plain),
    f("-iwithprefix", JoinedOrSeparate, Plain),
    f("-iwithprefixbefore", JoinedOrSeparate, Plain),
    // The sysroot is keyed by its path (the arguments) and every header read from it by content,
    // like any header; its absent headers are the include search's (include_search.rs).
    f("-isysroot", JoinedOrSeparate, Plain),
    f("--sysroot", Separate, Plain),
    f("--sysroot=", Joined, Plain),
    f("-include", JoinedOrSeparate, IncludeFile),
    f("-imacros", JoinedOrSeparate, IncludeFile),
    f("-include-pch", Separate, InputFile),
    f("-D", JoinedOrSeparate, Plain),
    f("-U", JoinedOrSeparate, Plain),
    f("-std=", Joined, Plain),
    f("-stdlib=", Joined, Plain),
    f("-O", Joined, Plain),
    f("-W", Joined, Plain),
    f("-f", Joined, Plain),
    f("-m", Joined, Plain),
    f("-w", None, Plain),
    f("-pedantic", Joined, Plain),
    f("-ansi", None, Plain),
    f("-pipe", None, Plain),
    f("-pthread", None, Plain),
    f("-p", None, Plain),
    f("-pg", None, Plain),
    f("-s", None, Plain),
    f("-static", Joined, Plain),
    f("-shared", Joined, Plain),
    f("-rdynamic", None, Plain),
    f("-pie", None, Plain),
    f("-no-pie", None, Plain),
    f("-nostdinc", Joined, Plain),
    f("-nostdlib", Joined, Plain),
    f("-nodefaultlibs", None, Plain),
    f("-nostartfiles", None, Plain),
    f("-undef", None, Plain),
    f("-trigraphs", None, Plain),
    f("-traditional", Joined, Plain),
    f("-C", None, Plain),
    f("-CC", None, Plain),
    f("-P", None, Plain),
    f("-target", Separate, Plain),
    f("--target=", Joined, Plain),
    f("-arch", Separate, Plain),
    // A -B prefix is searched for the compiler proper, the assembler and a `specs` file: none of
    // them in the compiler's identity.
    f("-B", JoinedOrSeparate, TooHard("-B prefix")),
    f("-l", JoinedOrSeparate, Plain),
    f("-L", JoinedOrSeparate, Plain),
    f("--param", Separate, Plain),
    f("--param=", Joined, Plain),
    f("-rtlib=", Joined, Plain),
    f("-unwindlib=", Joined, Plain),
    f("-resource-dir", Separate, Plain),
    f("--gcc-toolchain=", Joined, Plain),
    f("-Q", Joined, Plain),
    f("-emit-llvm", None, Plain),
    f("-integrated-as", None, Plain),
    f("-no-integrated-as", None, Plain),
    f("-g", Joined, Debug),
    f("-g0", None, NoDebug),
    f("-gsplit-dwarf", None, SplitDwarf),
    f("--coverage", None, CoverageNotes),
    f("-ftest-coverage", None, CoverageNotes),
    f("-fprofile-arcs", None, Coverage),
    f("-fprofile-generate", Joined, Coverage),
    f("-fprofile-instr-generate", Joined, Coverage),
    f("-fprofile-use", None, TooHard("-fprofile-use without a file")),
    f("-fprofile-use=", Joined, InputFile),
    f("-fprofile-instr-use", None, DefaultInputFile("default.profdata")),
    f("-fprofile-instr-use=", Joined, InputFile),
    f("-fprofile-sample-use=", Joined, InputFile),
    f("-fmemory-profile-use=", Joined, InputFile),
    f("-fprofile-remapping-file=", Joined, InputFile),
    f("-fprofile-list=", Joined, InputFile),
    f("-fauto-profile", None, DefaultInputFile("fbdata.afdo")),
    f("-fauto-profile=", Joined, InputFile),
    f("-fsanitize-blacklist=", Joined, InputFile),
    f("-fsanitize-ignorelist=", Joined, InputFile),
    f("-fsanitize-system-ignorelist=", Joined, InputFile),
    f("-fsanitize-coverage-allowlist=", Joined, InputFile),
    f("-fsanitize-coverage-whitelist=", Joined, InputFile),
    f("-fsanitize-coverage-ignorelist=", Joined, InputFile),
    f("-fsanitize-coverage-blocklist=", Joined, InputFile),
    f("-fsanitize-coverage-blacklist=", Joined, InputFile),
    f("-fxray-attr-list=", Joined, InputFile),
    f("-fxray-always-instrument=", Joined, InputFile),
    f("-fxray-never-instrument=", Joined, InputFile),
    f("-fplugin=", Joined, InputFile),
    f("-fpass-plugin=", Joined, InputFile),
    f("-specs=", Joined, InputFile),
    f("--specs=", Joined, InputFile),
    f("-specs", Separate, InputFile),
    // They embed the command line as the compiler proper sees it: the output path, cachepot's own
    // dependency file and colour flag. (clang also spells -grecord-command-line
    // -grecord-gcc-switches: refused in `Gcc::parse`; gcc's, its default, leaves those out.)
    f("-grecord-command-line", None, TooHard("-grecord-command-line")),
    f("-frecord-command-line", None, TooHard("-frecord-command-line")),
    f("-frecord-gcc-switches", None, TooHard("-frecord-gcc-switches")),
    f("-fdebug-prefix-map=", Joined, PrefixMap),
    f("-ffile-prefix-map=", Joined, PrefixMap),
    f("-fdiagnostics-color", Joined, DiagnosticsColor),
    f("-fno-diagnostics-color", None, Color(ColorChoice::Never)),
    f("-fcolor-diagnostics", None, Color(ColorChoice::Always)),
    f("-fno-color-diagnostics", None, Color(ColorChoice::Never)),
    f("-fsyntax-only", None, TooHard("-fsyntax-only")),
    f("-fdump-", Joined, ExtraOutputs("-fdump-*")),
    f("-fstack-usage", None, ExtraOutputs("-fstack-usage")),
    f("-fcallgraph-info", Joined, ExtraOutputs("-fcallgraph-info")),
    f(
        "-fsave-optimization-record",
        Joined,
        ExtraOutputs("-fsave-optimization-record"),
    ),
    f("-ftime-trace", Joined, ExtraOutputs("-ftime-trace")),
    f("-ftime-report", Joined, TooHard("-ftime-report")),
    f("-fmodules", Joined, TooHard("clang modules")),
    f("-fmodule-file=", Joined, TooHard("clang modules")),
    f("-fmodule-map-file=", Joined, TooHard("clang modules")),
    f("-fprebuilt-module-path=", Joined, TooHard("clang modules")),
    f("-fimplicit-module-maps", None, TooHard("clang modules")),
    f("-aux-info", Separate, ExtraOutputs("-aux-info")),
    f("-save-temps", Joined, ExtraOutputs("-save-temps")),
    f("-dumpbase", Separate, ExtraOutputs("-dumpbase/-dumpdir")),
    f("-dumpdir", Separate, ExtraOutputs("-dumpbase/-dumpdir")),
    f("-dump", Joined, Informational),
    f("-print-", Joined, Informational),
    f("-d", Joined, TooHard("-d dump options")),
    f("-v", None, TooHard("-v")),
    f("-###", None, Informational),
    f("--help", Joined, Informational),
    f("--version", None, Informational),
    // configure's compiler-version probes (`$CC -V`, `-qversion`, `-version`, `-?`): informational,
    // not an unsupported option, even where gcc rejects them.
    f("-V", None, Informational),
    f("-qversion", None, Informational),
    f("-version", None, Informational),
    f("-?", None, Informational),
    f("-time", Joined, TooHard("-time")),
];

/// Environment variables that change what gcc/clang produce (or print), hashed into the key. The
/// audit (gcc's "Environment Variables Affecting GCC", clang's driver and cc1): the include paths;
/// SOURCE_DATE_EPOCH; GCC_COMPARE_DEBUG; the diagnostics' colours, links and format (COLUMNS: gcc 12 ignores it when stderr is no terminal, as it is
/// under cachepot);
/// the locale; Apple's SDK and deployment targets (clang reads them for Darwin targets).
/// LIBRARY_PATH and LD_RUN_PATH matter only to links, which are not cached; TMPDIR names
/// temporary files whose names reach no output. Refused instead: `UNCACHEABLE_ENV` and
/// `refused_env`.
pub const KEY_ENV: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "OBJCPLUS_INCLUDE_PATH",
    "SOURCE_DATE_EPOCH",
    "GCC_COMPARE_DEBUG",
    "GCC_EXTRA_DIAGNOSTIC_OUTPUT",
    "SDKROOT",
    "MACOSX_DEPLOYMENT_TARGET",
    "IPHONEOS_DEPLOYMENT_TARGET",
    "TVOS_DEPLOYMENT_TARGET",
    "WATCHOS_DEPLOYMENT_TARGET",
    "GCC_COLORS",
    "GCC_URLS",
    "TERM_URLS",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
];

/// Environment variables that make the compiler write a dependency file we would not know about.
const UNCACHEABLE_ENV: &[&str] = &["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"];

/// Environment that makes a call uncacheable, and the reason counted. Keying the value would not
/// do: GCC_EXEC_PREFIX and COMPILER_PATH name directories where gcc finds its compiler proper
/// and assembler, programs the compiler's identity does not hold; CCC_OVERRIDE_OPTIONS edits
/// clang's arguments (it can add outputs); the CC_PRINT_*/CC_LOG_* switches make clang write
/// files or text of its own.
fn refused_env(env: &dyn Fn(&str) -> Option<OsString>) -> Option<NotCacheable> {
    const TOO_HARD: &[&str] = &["GCC_EXEC_PREFIX", "COMPILER_PATH", "CCC_OVERRIDE_OPTIONS"];
    const WRITES: &[&str] = &[
        "CC_PRINT_OPTIONS",
        "CC_PRINT_HEADERS",
        "CC_LOG_DIAGNOSTICS",
        "CC_PRINT_PROC_STAT",
    ];
    let set = |v: &str| env(v).is_some_and(|x| !x.is_empty());
    if let Some(v) = TOO_HARD.iter().copied().find(|v| set(v)) {
        return Some(NotCacheable::TooHard(v));
    }
    WRITES.iter().copied().find(|v| set(v)).map(NotCacheable::ExtraOutputs)
}

/// gcc or clang: one argument table, a few differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Gcc,
    Clang,
}

/// The gcc/clang family as the C flow sees it.
pub struct Gcc {
    pub family: Family,
}

pub static GCC: Gcc = Gcc { family: Family::Gcc };
pub static CLANG: Gcc = Gcc { family: Family::Clang };

/// The family of a compiler name (as invoked, or its real file's name), if gcc or clang.
pub fn from_name(name: &str) -> Option<&'static dyn CFamily> {
    match family_from_name(name)? {
        Family::Gcc => Some(&GCC),
        Family::Clang => Some(&CLANG),
    }
}

impl CFamily for Gcc {
    fn name(&self) -> &'static str {
        match self.family {
            Family::Gcc => "gcc",
            Family::Clang => "clang",
        }
    }

    fn parse(
        &self,
        args: &[OsString],
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<CCompile, NotCacheable> {
        if self.family == Family::Clang && args.iter().any(|a| a == "-grecord-gcc-switches") {
            return Err(NotCacheable::TooHard("-grecord-command-line"));
        }
        parse(args, cwd, env)
    }

    fn key_env(&self) -> &'static [&'static str] {
        KEY_ENV
    }

    fn included_files(&self, preprocessed: &[u8]) -> Vec<PathBuf> {
        linemarkers::included_files(preprocessed)
    }

    fn preprocessed_compile_args(&self, req: &CCompile) -> Option<Vec<OsString>> {
        // gcc and clang take their own -E output as `-x <language>-cpp-output`: -D, -I and the
        // other preprocessor options are then ignored, the object is the same.
        let language = match req.language.as_str() {
            "c" => "cpp-output",
            "c++" => "c++-cpp-output",
            "objective-c" => "objective-c-cpp-output",
            "objective-c++" => "objective-c++-cpp-output",
            _ => return Option::None,
        };
        let source = req.source.as_os_str();
        let at = req.key_args.iter().rposition(|a| a == source)?;
        let mut args = Vec::with_capacity(req.key_args.len() + 1);
        let mut it = req.key_args.iter().enumerate();
        while let Some((i, a)) = it.next() {
            if i == at {
                continue;
            }
            // The dependency file is written by the local preprocessor run (see
            // preprocess_dependency_args): no dependency option reaches the remote compile.
            if a == "<dep target>" || a == "-MT" || a == "-MQ" {
                it.next();
                continue;
            }
            if a == "-MD"
                || a == "-MMD"
                || a == "-MP"
                || a == "-MG"
                || a.as_bytes().starts_with(b"-MT")
                || a.as_bytes().starts_with(b"-MQ")
            {
                continue;
            }
            // The input's language is given anew below.
            if a == "-x" {
                it.next();
                continue;
            }
            if a.as_bytes().starts_with(b"-x") {
                continue;
            }
            args.push(a.clone());
        }
        if self.family == Family::Clang {
            // The preprocessor's options (-I, -D) are unused on preprocessed input; clang's driver
            // would say so on stderr, which the compile of the source does not.
            args.push(OsString::from("-Qunused-arguments"));
        }
        args.push(OsString::from("-x"));
        args.push(OsString::from(language));
        Some(args)
    }

    fn preprocess_dependency_args(&self, req: &CCompile) -> Option<Vec<OsString>> {
        // Only -MD's full listing, named by -MD itself (not -Wp,-MD,file), written to a regular file.
        let dep = req.outputs.iter().find(|o| o.role == "dep")?;
        if req.dep_style != DepStyle::UserFull || !req.dep_args.iter().any(|a| a == "-MD") {
            return Option::None;
        }
        let object = &req.outputs[0].path;
        // The compile's default target is the object as written, quoted (the driver passes
        // `-MQ <object>`); a path that quoting changes is left to the local compile.
        let plain = |p: &Path| {
            p.as_os_str()
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"._/+-".contains(b))
        };
        if !plain(object) || !plain(&dep.path) {
            return Option::None;
        }
        let mut args = req.dep_args.clone();
        args.push(OsString::from("-MF"));
        args.push(dep.path.clone().into_os_string());
        if !req
            .dep_args
            .iter()
            .any(|a| a.as_bytes().starts_with(b"-MT") || a.as_bytes().starts_with(b"-MQ"))
        {
            args.push(OsString::from("-MQ"));
            args.push(object.clone().into_os_string());
        }
        Some(args)
    }

    fn dependency_args(&self, listing: &Path) -> Vec<OsString> {
        vec![
            OsString::from("-MD"),
            OsString::from("-MF"),
            listing.as_os_str().to_os_string(),
        ]
    }

    fn dependencies(&self, listing: &[u8]) -> Vec<PathBuf> {
        depfile::prerequisites(listing)
    }

    fn color_flag(&self) -> &'static str {
        match self.family {
            Family::Clang => "-fcolor-diagnostics",
            Family::Gcc => "-fdiagnostics-color=always",
        }
    }

    /// gcc lets the last matching map win; clang the longest: both pick the innermost.
    fn remap_args(&self, from: &Path, to: &Path) -> Vec<OsString> {
        let mut a = OsString::from("-ffile-prefix-map=");
        a.push(from);
        a.push("=");
        a.push(to);
        vec![a]
    }

    fn precompiled_headers(&self, req: &CCompile, cwd: &Path) -> Vec<PathBuf> {
        // gcc does not look for a .gch while it makes one (a garbage `x.gch` beside an `-include`d
        // `x` draws no -Winvalid-pch warning then, as it does in a normal compile): the previous
        // build's PCH is no input of the next one's. clang may chain PCHs, so it keeps them all.
        if self.family == Family::Gcc && req.language.ends_with("header") {
            return Vec::new();
        }
        include_search::precompiled_headers(req, cwd)
    }

    /// gcc shows what it passes its compiler proper (`-v`: the cc1 line, with `-march=native`
    /// expanded into the CPU and every feature flag); clang shows its `-cc1` line (`-###`:
    /// `-target-cpu`, `-target-feature`, `-tune-cpu`).
    fn resolve_native(&self, driver: &Path, args: &[OsString]) -> Option<String> {
        let mut cmd = std::process::Command::new(driver);
        cmd.args(args.iter().filter(|a| crate::identity::is_native(a)))
            .env(crate::locate::GUARD_VAR, crate::locate::guard_value())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        match self.family {
            Family::Gcc => cmd.args(["-E", "-v", "-x", "c", "/dev/null"]),
            Family::Clang => cmd.args(["-###", "-c", "-x", "c", "/dev/null"]),
        };
        let out = cmd.output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let mut resolved = Vec::new();
        match self.family {
            Family::Gcc => {
                let line = text.lines().find(|l| l.contains("/cc1") && l.contains(" -E "))?;
                let mut words = line.split_whitespace().peekable();
                while let Some(w) = words.next() {
                    if w.starts_with("-m") {
                        resolved.push(w.to_string());
                    } else if w == "--param" {
                        resolved.push(format!("--param {}", words.next().unwrap_or("")));
                    }
                }
            }
            Family::Clang => {
                let line = text.lines().find(|l| l.contains("\"-cc1\""))?;
                let words: Vec<&str> = line.split('"').filter(|w| !w.trim().is_empty()).collect();
                for pair in words.windows(2) {
                    if ["-target-cpu", "-target-feature", "-tune-cpu"].contains(&pair[0]) {
                        resolved.push(format!("{} {}", pair[0], pair[1]));
                    }
                }
            }
        }
        (!resolved.is_empty()).then(|| resolved.join("\n"))
    }

    /// gcc: the driver, the compilers proper it runs (cc1, cc1plus, cc1obj, cc1objplus where
    /// installed) and the assembler. clang: the clang binary (the driver is the compiler) and the
    /// LLVM and clang libraries it loads, where the code generation lives.
    fn programs(&self, driver: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
        let mut files = vec![("driver".to_string(), driver.to_path_buf())];
        let ask = |args: &[&str]| -> Option<String> {
            let out = std::process::Command::new(driver)
                .args(args)
                .env(crate::locate::GUARD_VAR, crate::locate::guard_value())
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        match self.family {
            Family::Gcc => {
                // One run: the directories gcc looks in for its programs (then PATH, for `as`).
                let Some(dirs) = ask(&["-print-search-dirs"]) else {
                    return Ok(files);
                };
                let programs: Vec<PathBuf> = dirs
                    .lines()
                    .find_map(|l| l.strip_prefix("programs: ="))
                    .map(|l| l.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect())
                    .unwrap_or_default();
                let me = crate::locate::SelfIdentity::current();
                for prog in ["cc1", "cc1plus", "cc1obj", "cc1objplus", "as"] {
                    let found = programs
                        .iter()
                        .map(|d| d.join(prog))
                        .find(|p| crate::locate::is_executable(p))
                        .or_else(|| crate::locate::find_compiler(std::ffi::OsStr::new(prog), &me).ok());
                    if let Some(p) = found.and_then(|p| p.canonicalize().ok())
                        && p.is_file()
                    {
                        files.push((prog.to_string(), p));
                    }
                }
            }
            Family::Clang => {
                // The shared libraries clang loads (ldd reads the ELF headers; nothing of clang runs).
                let out = std::process::Command::new("ldd")
                    .arg(driver)
                    .stderr(std::process::Stdio::null())
                    .output()?;
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    let Some((name, rest)) = line.trim().split_once(" => ") else {
                        continue;
                    };
                    if !(name.starts_with("libclang") || name.starts_with("libLLVM")) {
                        continue;
                    }
                    let path = rest.split(" (").next().unwrap_or("").trim();
                    if let Ok(p) = Path::new(path).canonicalize() {
                        files.push((format!("lib:{name}"), p));
                    }
                }
            }
        }
        Ok(files)
    }

    fn shadowing_candidates(
        &self,
        real: &Path,
        identity: &str,
        req: &CCompile,
        cfg: &Config,
        read: &[PathBuf],
        cwd: &Path,
    ) -> Option<Vec<PathBuf>> {
        let system = include_search::system_dirs(real, identity, req, cfg)?;
        let chain = include_search::search_chain(req, &system);
        Some(include_search::must_be_absent(read, &chain, cwd))
    }

    fn probe_search_dirs(&self, real: &Path, identity: &str, req: &CCompile, cfg: &Config) -> Option<Vec<PathBuf>> {
        include_search::probe_chain(real, identity, req, cfg)
    }
}

/// Which family a compiler name belongs to, from the name it was invoked by or its real file name.
pub fn family_from_name(name: &str) -> Option<Family> {
    let base = strip_version(strip_triplet(name));
    match base {
        "clang" | "clang++" => Some(Family::Clang),
        "gcc" | "g++" | "cc" | "c++" => Some(Family::Gcc),
        _ => Option::None,
    }
}

/// `x86_64-linux-gnu-gcc` → `gcc`.
fn strip_triplet(name: &str) -> &str {
    for base in ["clang++", "clang", "g++", "gcc", "c++", "cc"] {
        if let Some(pos) = name.rfind(&format!("-{base}")) {
            let rest = &name[pos + 1..];
            if rest == base || rest.strip_prefix(base).is_some_and(is_version_suffix) {
                return rest;
            }
        }
    }
    name
}

/// `gcc-12` → `gcc`, `clang++-14` → `clang++`.
fn strip_version(name: &str) -> &str {
    match name.rfind('-') {
        Some(pos) if is_version_suffix(&name[pos..]) => &name[..pos],
        _ => name,
    }
}

fn is_version_suffix(s: &str) -> bool {
    s.strip_prefix('-')
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// The language gcc would pick for a file, from its extension.
fn language_of(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?;
    Some(match ext {
        "c" => "c",
        "i" => "cpp-output",
        "ii" => "c++-cpp-output",
        "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" => "c++",
        "m" => "objective-c",
        "mi" => "objective-c-cpp-output",
        "mm" | "M" => "objective-c++",
        "mii" => "objective-c++-cpp-output",
        "s" => "assembler",
        "S" | "sx" => "assembler-with-cpp",
        "h" | "hh" | "hpp" | "hxx" | "H" | "tcc" | "h++" => "header",
        "cu" => "cuda",
        _ => return Option::None,
    })
}

fn supported_language(lang: &str) -> Result<(), NotCacheable> {
    match lang {
        "c"
        | "c++"
        | "objective-c"
        | "objective-c++"
        | "assembler"
        | "assembler-with-cpp"
        | "cpp-output"
        | "c++-cpp-output"
        | "objective-c-cpp-output"
        | "objective-c++-cpp-output" => Ok(()),
        // Making a precompiled header (.gch/.pch) is a compile like any other: its output is
        // restored byte for byte, so the users of a cached one see the same bytes and hit.
        "header" | "c-header" | "c++-header" | "objective-c-header" | "objective-c++-header" => Ok(()),
        l if l.ends_with("header") => Err(NotCacheable::PrecompiledHeader),
        _ => Err(NotCacheable::UnsupportedLanguage),
    }
}

/// Parse one gcc/clang call. `args` are the arguments after the compiler name, already expanded
/// from response files; `cwd` is the working directory.
pub fn parse(args: &[OsString], cwd: &Path, env: &dyn Fn(&str) -> Option<OsString>) -> Result<CCompile, NotCacheable> {
    for var in UNCACHEABLE_ENV {
        if env(var).is_some() {
            return Err(NotCacheable::DependencyEnv);
        }
    }
    if let Some(reason) = refused_env(env) {
        return Err(reason);
    }
    let mut p = State::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let bytes = arg.as_bytes();
        if bytes == b"-" {
            return Err(NotCacheable::StdinInput);
        }
        if bytes.first() != Some(&b'-') {
            p.add_input(arg, cwd)?;
            i += 1;
            continue;
        }
        let (m, used) = match match_flag(TABLE, args, i) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                log::debug!(target: "gcc", "{e}");
                return Err(NotCacheable::BadArguments);
            }
            Option::None => {
                log::debug!(target: "gcc", "unsupported option {}", arg.to_string_lossy());
                return Err(NotCacheable::UnsupportedOption);
            }
        };
        i += used;
        p.apply(m.kind, m.value, &m.raw, cwd)?;
    }
    p.finish(cwd)
}

#[derive(Default)]
struct State {
    mode: Option<Kind>,
    output: Option<OsString>,
    language: Option<String>,
    source: Option<(PathBuf, String)>,
    dep_gen: bool,
    dep_style: DepStyle,
    dep_missing_ok: bool,
    dep_file: Option<OsString>,
    dep_target_given: bool,
    dep_args: Vec<OsString>,
    key_args: Vec<OsString>,
    preprocessor_args: Vec<OsString>,
    extra_inputs: Vec<PathBuf>,
    include_files: Vec<PathBuf>,
    include_dirs: Vec<(&'static str, PathBuf)>,
    debug: bool,
    split_dwarf: bool,
    coverage: bool,
    coverage_notes: bool,
    prefix_maps: Vec<(OsString, OsString)>,
    color: ColorChoice,
    non_source_input: bool,
    /// The previous -Xclang value was `-include-pch` or `-load`: the next one names the file.
    xclang_pch_next: bool,
}

impl State {
    fn add_input(&mut self, arg: &OsString, cwd: &Path) -> Result<(), NotCacheable> {
        let path = PathBuf::from(arg);
        let lang = match &self.language {
            Some(l) => l.clone(),
            Option::None => match language_of(&path) {
                Some(l) => l.to_string(),
                Option::None => {
                    // Decided in finish(): without -c this is a link, which is the better reason.
                    self.non_source_input = true;
                    return Ok(());
                }
            },
        };
        supported_language(&lang)?;
        if self.source.is_some() {
            return Err(NotCacheable::MultipleSources);
        }
        if !cwd.join(&path).is_file() {
            return Err(NotCacheable::MissingInput);
        }
        self.key_args.push(arg.clone());
        self.preprocessor_args.push(arg.clone());
        self.source = Some((path, lang));
        Ok(())
    }

    fn apply(&mut self, kind: Kind, value: Option<OsString>, raw: &[OsString], cwd: &Path) -> Result<(), NotCacheable> {
        let value_path = || PathBuf::from(value.clone().unwrap_or_default());
        // Most flags go into the key and to the preprocessor as they are.
        let mut hashed = true;
        let mut to_preprocessor = true;
        match kind {
            CompileOnly | AssembleOnly => {
                if self.mode != Some(PreprocessOnly) {
                    self.mode = Some(if kind == AssembleOnly || self.mode == Some(AssembleOnly) {
                        AssembleOnly
                    } else {
                        CompileOnly
                    });
                }
                to_preprocessor = false;
            }
            PreprocessOnly => return Err(NotCacheable::PreprocessOnly),
            DepOnly => return Err(NotCacheable::DependencyOnly),
            Output => {
                if value.as_deref() == Some(OsStr::new("-")) {
                    return Err(NotCacheable::OutputToStdout);
                }
                self.output = value;
                hashed = false;
                to_preprocessor = false;
            }
            Language => {
                let v = value.unwrap_or_default().to_string_lossy().into_owned();
                self.language = if v == "none" { Option::None } else { Some(v) };
            }
            DepGen => {
                self.dep_args.extend(raw.iter().cloned());
                self.dep_gen = true;
                self.dep_style = if raw[0] == "-MMD" {
                    DepStyle::UserWithoutSystem
                } else {
                    DepStyle::UserFull
                };
                to_preprocessor = false;
            }
            DepFile => {
                self.dep_file = value;
                hashed = false;
                to_preprocessor = false;
            }
            DepTarget => {
                self.dep_args.extend(raw.iter().cloned());
                self.dep_target_given = true;
                to_preprocessor = false;
            }
            DepOption => {
                self.dep_args.extend(raw.iter().cloned());
                if raw[0] == "-MG" {
                    // Missing headers are listed as if generated: the listing is not the set read.
                    self.dep_missing_ok = true;
                }
                to_preprocessor = false;
            }
            Wp => {
                let v = value.unwrap_or_default();
                let parts: Vec<&[u8]> = v.as_bytes().split(|&b| b == b',').collect();
                match parts.as_slice() {
                    [flag, file] if *flag == b"-MD" || *flag == b"-MMD" => {
                        self.dep_gen = true;
                        self.dep_style = if *flag == b"-MMD" {
                            DepStyle::UserWithoutSystem
                        } else {
                            DepStyle::UserFull
                        };
                        self.dep_file = Some(OsStr::from_bytes(file).to_os_string());
                        hashed = false;
                        to_preprocessor = false;
                        self.key_args
                            .push(OsString::from(format!("-Wp,{}", String::from_utf8_lossy(flag))));
                    }
                    _ if parts.iter().any(|p| p.starts_with(b"-M")) => return Err(NotCacheable::UnsupportedOption),
                    _ => {}
                }
            }
            Xclang => {
                let v = value.clone().unwrap_or_default();
                if std::mem::take(&mut self.xclang_pch_next) {
                    let p = PathBuf::from(&v);
                    if !cwd.join(&p).is_file() {
                        return Err(NotCacheable::MissingInput);
                    }
                    self.extra_inputs.push(p);
                } else if v == "-include-pch" || v == "-load" {
                    // The precompiled header, or the plugin library, is named next.
                    self.xclang_pch_next = true;
                } else if v.as_bytes().starts_with(b"-fprofile-instrument-use-path=") {
                    return Err(NotCacheable::TooHard("-Xclang -fprofile-instrument-use-path"));
                }
            }
            Xpreprocessor => {
                if value.as_ref().is_some_and(|v| v.as_bytes().starts_with(b"-M")) {
                    return Err(NotCacheable::UnsupportedOption);
                }
            }
            Wa => {
                // -Wa,-a… writes an assembler listing file; -Wa,--MD writes a dependency file.
                let v = value.unwrap_or_default();
                if v.as_bytes()
                    .split(|&b| b == b',')
                    .any(|p| p.starts_with(b"-a") || p.starts_with(b"--MD"))
                {
                    return Err(NotCacheable::UnsupportedOption);
                }
                to_preprocessor = false;
            }
            IncludeDir(flag) => self.include_dirs.push((flag, value_path())),
            IncludeFile => self.include_files.push(value_path()),
            InputFile => {
                let p = value_path();
                if cwd.join(&p).is_dir() {
                    // gcc reads <dir>/<mangled object path>.gcda: which file is not known here.
                    return Err(NotCacheable::TooHard("profile data directory"));
                }
                if !cwd.join(&p).is_file() {
                    return Err(NotCacheable::MissingInput);
                }
                self.extra_inputs.push(p);
            }
            DefaultInputFile(name) => {
                let p = PathBuf::from(name);
                if !cwd.join(&p).is_file() {
                    return Err(NotCacheable::MissingInput);
                }
                self.extra_inputs.push(p);
            }
            Plain => {}
            Debug => self.debug = true,
            NoDebug => self.debug = false,
            SplitDwarf => {
                self.debug = true;
                self.split_dwarf = true;
            }
            Coverage => self.coverage = true,
            CoverageNotes => {
                self.coverage = true;
                self.coverage_notes = true;
            }
            PrefixMap => {
                let v = value.unwrap_or_default();
                if let Some(pos) = v.as_bytes().iter().position(|&b| b == b'=') {
                    let (old, new) = v.as_bytes().split_at(pos);
                    self.prefix_maps
                        .push((OsStr::from_bytes(old).into(), OsStr::from_bytes(&new[1..]).into()));
                }
            }
            Color(c) => {
                self.color = c;
                hashed = false;
                to_preprocessor = false;
            }
            DiagnosticsColor => {
                self.color = match value.as_deref().and_then(OsStr::to_str) {
                    Some("") | Some("=always") => ColorChoice::Always,
                    Some("=never") => ColorChoice::Never,
                    Some("=auto") => ColorChoice::Auto,
                    _ => return Err(NotCacheable::BadArguments),
                };
                hashed = false;
                to_preprocessor = false;
            }
            TooHard(reason) => return Err(NotCacheable::TooHard(reason)),
            Informational => return Err(NotCacheable::Informational),
            ExtraOutputs(option) => return Err(NotCacheable::ExtraOutputs(option)),
        }
        if hashed {
            self.key_args.extend(raw.iter().cloned());
        }
        if to_preprocessor {
            self.preprocessor_args.extend(raw.iter().cloned());
        }
        Ok(())
    }

    fn finish(self, cwd: &Path) -> Result<CCompile, NotCacheable> {
        // Compiling a header makes a precompiled header, with or without -c.
        let header = self.source.as_ref().is_some_and(|(_, l)| l.ends_with("header"));
        let Some(mode) = self.mode.or(header.then_some(CompileOnly)) else {
            return Err(NotCacheable::Linking);
        };
        if header && mode != CompileOnly {
            return Err(NotCacheable::TooHard("-S on a header"));
        }
        if self.non_source_input {
            return Err(NotCacheable::NonSourceInput);
        }
        let Some((source, language)) = self.source else {
            return Err(NotCacheable::NoSource);
        };
        let default_ext = if mode == AssembleOnly { "s" } else { "o" };
        let object = match &self.output {
            Some(o) => PathBuf::from(o),
            // gcc and clang write `<header>.gch` beside the header.
            Option::None if header => {
                let mut p = source.clone().into_os_string();
                p.push(".gch");
                PathBuf::from(p)
            }
            Option::None => PathBuf::from(source.file_stem().unwrap_or_default()).with_extension(default_ext),
        };
        let mut outputs = vec![Output {
            role: "object",
            path: object.clone(),
            optional: false,
        }];
        let mut output_path_in_key = Option::None;
        if self.dep_gen {
            let dep = match &self.dep_file {
                Some(d) => PathBuf::from(d),
                Option::None if self.output.is_some() => object.with_extension("d"),
                Option::None => PathBuf::from(source.file_stem().unwrap_or_default()).with_extension("d"),
            };
            outputs.push(Output {
                role: "dep",
                path: dep,
                optional: false,
            });
        }
        let mut key_args = self.key_args;
        if self.dep_gen && !self.dep_target_given {
            // The dependency file's target is the object path as written on the command line.
            key_args.push(OsString::from("<dep target>"));
            key_args.push(object.clone().into_os_string());
        }
        if self.split_dwarf && mode == CompileOnly {
            outputs.push(Output {
                role: "dwo",
                path: object.with_extension("dwo"),
                optional: true,
            });
            output_path_in_key = Some(object.clone());
        }
        if self.coverage_notes && mode == CompileOnly {
            outputs.push(Output {
                role: "gcno",
                path: object.with_extension("gcno"),
                optional: true,
            });
        }
        if self.coverage {
            // The object embeds the absolute path of its .gcda file.
            output_path_in_key = Some(cwd.join(&object));
        }
        let hash_cwd = if self.debug || self.coverage {
            Some(map_prefix(cwd, &self.prefix_maps))
        } else {
            Option::None
        };
        let path_maps = self
            .prefix_maps
            .iter()
            .map(|(old, _)| PathBuf::from(old))
            .filter(|p| p.is_absolute())
            .collect();
        Ok(CCompile {
            path_maps,
            source,
            language,
            outputs,
            key_args,
            preprocessor_args: self.preprocessor_args,
            extra_inputs: self.extra_inputs,
            include_files: self.include_files,
            include_dirs: self.include_dirs,
            hash_cwd,
            output_path_in_key,
            color: self.color,
            dep_style: if self.dep_missing_ok {
                DepStyle::UserWithoutSystem
            } else {
                self.dep_style
            },
            dep_args: self.dep_args,
        })
    }
}

/// The working directory as the debug info will record it, after -fdebug-prefix-map.
fn map_prefix(cwd: &Path, maps: &[(OsString, OsString)]) -> PathBuf {
    for (old, new) in maps.iter().rev() {
        if let Ok(rest) = cwd.strip_prefix(Path::new(old)) {
            return Path::new(new).join(rest);
        }
    }
    cwd.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(dir: &Path, args: &[&str]) -> Result<CCompile, NotCacheable> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args, dir, &|_| Option::None)
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("cachepot-gcc-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.c"), "int x;").unwrap();
        std::fs::write(d.join("b.c"), "int y;").unwrap();
        d
    }

    #[test]
    fn preprocessed_compile_args_drop_the_input_and_name_the_language() {
        let d = dir();
        let req = parse_in(&d, &["-c", "-x", "c", "a.c", "-O2", "-DX=1", "-Iinc", "-o", "out/a.o"]).unwrap();
        let args: Vec<String> = GCC
            .preprocessed_compile_args(&req)
            .unwrap()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["-c", "-O2", "-DX=1", "-Iinc", "-x", "cpp-output"]);
        let req = parse_in(&d, &["-c", "-MD", "-MP", "-MT", "t", "a.c", "-o", "a.o"]).unwrap();
        let args = GCC.preprocessed_compile_args(&req).unwrap();
        assert_eq!(args, ["-c", "-x", "cpp-output"]);
        assert_eq!(
            GCC.preprocess_dependency_args(&req).unwrap(),
            ["-MD", "-MP", "-MT", "t", "-MF", "a.d"]
        );
        let req = parse_in(&d, &["-c", "-MD", "a.c", "-o", "out/a.o"]).unwrap();
        assert_eq!(GCC.preprocessed_compile_args(&req).unwrap(), ["-c", "-x", "cpp-output"]);
        assert_eq!(
            GCC.preprocess_dependency_args(&req).unwrap(),
            ["-MD", "-MF", "out/a.d", "-MQ", "out/a.o"]
        );
        let req = parse_in(&d, &["-c", "-MMD", "a.c"]).unwrap();
        assert!(GCC.preprocess_dependency_args(&req).is_none());
        let req = parse_in(&d, &["-c", "-xc++", "a.c"]).unwrap();
        let args = GCC.preprocessed_compile_args(&req).unwrap();
        assert_eq!(args, ["-c", "-x", "c++-cpp-output"]);
    }

    #[test]
    fn names() {
        assert_eq!(family_from_name("x86_64-linux-gnu-gcc-12"), Some(Family::Gcc));
        assert_eq!(family_from_name("clang++-14"), Some(Family::Clang));
        assert_eq!(family_from_name("cc"), Some(Family::Gcc));
        assert_eq!(family_from_name("gcc-ar"), Option::None);
        assert_eq!(family_from_name("clang-format"), Option::None);
    }

    #[test]
    fn simple_compile() {
        let d = dir();
        let c = parse_in(&d, &["-c", "a.c", "-o", "out/a.o", "-O2", "-Iinc", "-DX=1"]).unwrap();
        assert_eq!(c.outputs[0].path, PathBuf::from("out/a.o"));
        assert_eq!(c.language, "c");
        assert!(c.hash_cwd.is_none());
        assert!(c.key_args.iter().all(|a| a != "out/a.o"));
    }

    #[test]
    fn default_outputs_and_dep_files() {
        let d = dir();
        let c = parse_in(&d, &["-c", "a.c", "-MD"]).unwrap();
        assert_eq!(c.outputs[0].path, PathBuf::from("a.o"));
        assert_eq!(c.outputs[1].path, PathBuf::from("a.d"));
        let c = parse_in(&d, &["-c", "a.c", "-o", "x/y.o", "-MMD"]).unwrap();
        assert_eq!(c.outputs[1].path, PathBuf::from("x/y.d"));
        let c = parse_in(&d, &["-c", "a.c", "-Wp,-MD,.a.o.d"]).unwrap();
        assert_eq!(c.outputs[1].path, PathBuf::from(".a.o.d"));
        let c = parse_in(&d, &["-c", "a.c", "-MD", "-MF", "deps/a.dep", "-MT", "t"]).unwrap();
        assert_eq!(c.outputs[1].path, PathBuf::from("deps/a.dep"));
        assert!(c.preprocessor_args.iter().all(|a| a != "-MT" && a != "-MD"));
    }

    #[test]
    fn not_cacheable_reasons() {
        let d = dir();
        assert_eq!(parse_in(&d, &["a.c", "-o", "a"]).unwrap_err(), NotCacheable::Linking);
        assert_eq!(parse_in(&d, &["-E", "a.c"]).unwrap_err(), NotCacheable::PreprocessOnly);
        assert_eq!(
            parse_in(&d, &["-c", "a.c", "b.c"]).unwrap_err(),
            NotCacheable::MultipleSources
        );
        assert_eq!(parse_in(&d, &["-c", "-"]).unwrap_err(), NotCacheable::StdinInput);
        assert_eq!(parse_in(&d, &["-c", "nope.c"]).unwrap_err(), NotCacheable::MissingInput);
        assert_eq!(
            parse_in(&d, &["-c", "a.c", "-save-temps"]).unwrap_err(),
            NotCacheable::ExtraOutputs("-save-temps")
        );
        assert_eq!(parse_in(&d, &["-M", "a.c"]).unwrap_err(), NotCacheable::DependencyOnly);
        assert_eq!(
            parse_in(&d, &["-c", "a.c", "--frobnicate"]).unwrap_err(),
            NotCacheable::UnsupportedOption
        );
        assert_eq!(
            parse_in(&d, &["-c", "a.c", "-o"]).unwrap_err(),
            NotCacheable::BadArguments
        );
    }

    #[test]
    fn debug_coverage_split_dwarf() {
        let d = dir();
        let c = parse_in(&d, &["-c", "a.c", "-g", "-o", "a.o"]).unwrap();
        assert_eq!(c.hash_cwd.as_deref(), Some(d.as_path()));
        let c = parse_in(&d, &["-c", "a.c", "-g", "-fdebug-prefix-map=/=/X/"]).unwrap();
        assert!(c.hash_cwd.unwrap().starts_with("/X"));
        let c = parse_in(&d, &["-c", "a.c", "-gsplit-dwarf", "-o", "o/a.o"]).unwrap();
        assert_eq!(c.outputs[1].path, PathBuf::from("o/a.dwo"));
        let c = parse_in(&d, &["-c", "a.c", "--coverage", "-o", "o/a.o"]).unwrap();
        assert_eq!(c.outputs[1].path, PathBuf::from("o/a.gcno"));
        assert_eq!(c.output_path_in_key, Some(d.join("o/a.o")));
    }

    #[test]
    fn color_flags_stay_out_of_the_key() {
        let d = dir();
        let a = parse_in(&d, &["-c", "a.c", "-fdiagnostics-color=always"]).unwrap();
        let b = parse_in(&d, &["-c", "a.c"]).unwrap();
        assert_eq!(a.key_args, b.key_args);
        assert_eq!(a.color, ColorChoice::Always);
    }

    #[test]
    fn precompiled_header_creation_and_use() {
        let d = dir();
        std::fs::write(d.join("h.h"), "int z;").unwrap();
        std::fs::write(d.join("h.pch"), "pch").unwrap();
        // Making a PCH: with or without -c, `<header>.gch` beside the header unless -o says.
        let c = parse_in(&d, &["-x", "c++-header", "h.h"]).unwrap();
        assert_eq!(c.outputs[0].path, PathBuf::from("h.h.gch"));
        let c = parse_in(&d, &["-c", "h.h", "-o", "x.gch"]).unwrap();
        assert_eq!(c.outputs[0].path, PathBuf::from("x.gch"));
        assert_eq!(
            parse_in(&d, &["-S", "h.h"]).unwrap_err(),
            NotCacheable::TooHard("-S on a header")
        );
        // clang's `-Xclang -include-pch -Xclang FILE` (CMake's form) keys the PCH by content.
        let c = parse_in(
            &d,
            &[
                "-c",
                "a.c",
                "-Xclang",
                "-include-pch",
                "-Xclang",
                "h.pch",
                "-Xclang",
                "-include",
                "-Xclang",
                "h.h",
            ],
        )
        .unwrap();
        assert_eq!(c.extra_inputs, vec![PathBuf::from("h.pch")]);
        assert_eq!(
            parse_in(&d, &["-c", "a.c", "-Xclang", "-include-pch", "-Xclang", "gone.pch"]).unwrap_err(),
            NotCacheable::MissingInput
        );
    }

    /// Every option that makes gcc or clang read a file, in each spelling, with `F` where the file
    /// goes: a row of the table that reads a file must be here (the walk below), and each
    /// spelling must key the file by content (it is an extra input, hashed by compile.rs) or be
    /// refused with a reason. A spelling taken as a plain flag would key only the file's name.
    const READS_A_FILE: &[&[&str]] = &[
        &["-fprofile-use=F"],
        &["-fprofile-instr-use=F"],
        &["-fprofile-instr-use"],
        &["-fprofile-sample-use=F"],
        &["-fmemory-profile-use=F"],
        &["-fprofile-remapping-file=F"],
        &["-fprofile-list=F"],
        &["-fauto-profile=F"],
        &["-fauto-profile"],
        &["-fsanitize-blacklist=F"],
        &["-fsanitize-ignorelist=F"],
        &["-fsanitize-system-ignorelist=F"],
        &["-fsanitize-coverage-allowlist=F"],
        &["-fsanitize-coverage-whitelist=F"],
        &["-fsanitize-coverage-ignorelist=F"],
        &["-fsanitize-coverage-blocklist=F"],
        &["-fsanitize-coverage-blacklist=F"],
        &["-fxray-attr-list=F"],
        &["-fxray-always-instrument=F"],
        &["-fxray-never-instrument=F"],
        &["-fplugin=F"],
        &["-fpass-plugin=F"],
        &["-specs=F"],
        &["--specs=F"],
        &["-specs", "F"],
        &["-include-pch", "F"],
        &["-Xclang", "-include-pch", "-Xclang", "F"],
        &["-Xclang", "-load", "-Xclang", "F"],
        &["-Xclang", "-fprofile-instrument-use-path=F"],
        &["-fmodule-file=F"],
        &["-fmodule-map-file=F"],
        &["-B", "F"],
        &["-BF"],
        &["-fprofile-use"],
    ];

    #[test]
    fn every_option_that_reads_a_file_keys_its_content_or_is_refused() {
        let d = dir().join("reads");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.c"), "int x;").unwrap();
        // The file each spelling names, and the default names of the flags without a value.
        for name in ["F", "default.profdata", "fbdata.afdo"] {
            std::fs::write(d.join(name), "data").unwrap();
        }
        for spelling in READS_A_FILE {
            let mut args = vec!["-c", "a.c"];
            args.extend_from_slice(spelling);
            match parse_in(&d, &args) {
                Ok(c) => assert!(
                    c.extra_inputs.iter().any(|p| ["F", "default.profdata", "fbdata.afdo"]
                        .iter()
                        .any(|n| p == Path::new(n))),
                    "{spelling:?}: the file is not keyed by content ({:?})",
                    c.extra_inputs
                ),
                Err(NotCacheable::TooHard(_)) => {}
                Err(other) => panic!("{spelling:?}: refused without a reason of its own: {other:?}"),
            }
        }
        // The walk: every row that names a file is in the list above.
        for row in TABLE
            .iter()
            .filter(|r| matches!(r.kind, InputFile | DefaultInputFile(_)))
        {
            assert!(
                READS_A_FILE.iter().any(|sp| sp.iter().any(|a| a.starts_with(row.name))),
                "{} reads a file and has no spelling in READS_A_FILE",
                row.name
            );
        }
        // clang spells -grecord-command-line -grecord-gcc-switches; gcc's is its default.
        let args: Vec<OsString> = ["-c", "a.c", "-g", "-grecord-gcc-switches"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(matches!(
            CLANG.parse(&args, &d, &|_| Option::None),
            Err(NotCacheable::TooHard(_))
        ));
        assert!(GCC.parse(&args, &d, &|_| Option::None).is_ok());
        for flag in [
            "-grecord-command-line",
            "-frecord-command-line",
            "-frecord-gcc-switches",
        ] {
            assert!(
                matches!(parse_in(&d, &["-c", "a.c", flag]), Err(NotCacheable::TooHard(_))),
                "{flag}"
            );
        }
    }

    #[test]
    fn environment_that_changes_programs_arguments_or_outputs_is_refused() {
        let d = dir();
        let args: Vec<OsString> = ["-c", "a.c"].iter().map(OsString::from).collect();
        for (var, want) in [
            ("GCC_EXEC_PREFIX", NotCacheable::TooHard("GCC_EXEC_PREFIX")),
            ("COMPILER_PATH", NotCacheable::TooHard("COMPILER_PATH")),
            ("CCC_OVERRIDE_OPTIONS", NotCacheable::TooHard("CCC_OVERRIDE_OPTIONS")),
            ("CC_PRINT_HEADERS", NotCacheable::ExtraOutputs("CC_PRINT_HEADERS")),
            ("CC_LOG_DIAGNOSTICS", NotCacheable::ExtraOutputs("CC_LOG_DIAGNOSTICS")),
            ("DEPENDENCIES_OUTPUT", NotCacheable::DependencyEnv),
        ] {
            let env = |v: &str| (v == var).then(|| OsString::from("x"));
            assert_eq!(parse(&args, &d, &env).unwrap_err(), want, "{var}");
        }
        assert!(KEY_ENV.contains(&"SDKROOT") && KEY_ENV.contains(&"GCC_EXTRA_DIAGNOSTIC_OUTPUT"));
    }
}
