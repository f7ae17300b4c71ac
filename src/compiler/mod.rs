//! Compiler families: which compiler a call is for, and the typed request its arguments describe.
//! `args.rs` holds the shared flag-table machinery; each family has its own module behind the
//! `CFamily` trait (gcc/ for gcc and clang) or its own flow (rustc.rs for rust/).

pub mod args;
pub mod c_lexer;
pub mod diab;
pub mod gcc;
pub mod msvc;
pub mod nvcc;
pub mod probes;
pub mod rustc;

use crate::config::Config;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Which flow a call takes: a C-like family (gcc, clang, …) through compile.rs, or rustc through
/// rust/. Families are detected by the name the compiler was invoked by, then by its real file.
#[derive(Clone, Copy)]
pub enum FamilyKind {
    C(&'static dyn CFamily),
    Rust,
}

/// The family for a compiler invoked as `invoked`, whose real file is `real`. The name it was
/// invoked by decides (`cc` may be clang); the resolved file name is the fallback.
pub fn detect(invoked: &OsStr, real: &Path) -> Option<FamilyKind> {
    let by_name = |name: &str| -> Option<FamilyKind> {
        if rustc::is_rustc_name(name) {
            return Some(FamilyKind::Rust);
        }
        gcc::from_name(name)
            .or_else(|| msvc::from_name(name, real))
            .or_else(|| diab::from_name(name))
            .or_else(|| nvcc::from_name(name))
            .map(FamilyKind::C)
    };
    let name = Path::new(invoked).file_name()?.to_str()?;
    by_name(name).or_else(|| {
        let resolved = real.canonicalize().ok()?;
        by_name(resolved.file_name()?.to_str()?)
    })
}

/// Everything the C flow needs to know that differs between compiler families: how to read the
/// command line, which environment matters, how to preprocess, how a miss learns what it read,
/// where the compiler looks for headers, how to ask for colour. compile.rs never names a family;
/// a family never names the store.
pub trait CFamily: Sync {
    /// The family's name, for logs.
    fn name(&self) -> &'static str;

    /// Expand response files (`@file`) the way this family's driver does.
    fn expand_args(&self, args: &[OsString], cwd: &Path) -> Result<Vec<OsString>, String> {
        args::expand_response_files(args, cwd)
    }

    /// Parse the (expanded) arguments into the typed request, or say why the call is not cacheable.
    fn parse(
        &self,
        args: &[OsString],
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<CCompile, NotCacheable>;

    /// Environment variables that change what the compiler produces or prints (keyed).
    fn key_env(&self) -> &'static [&'static str];

    /// The arguments of a run that writes the preprocessed source to stdout.
    fn preprocess_args(&self, req: &CCompile) -> Vec<OsString> {
        let mut a = req.preprocessor_args.clone();
        a.push(OsString::from("-E"));
        a
    }

    /// Whether one preprocessor run covers everything the compile reads (false for nvcc, whose
    /// `-E` shows one pass of several): when false, calls that need preprocessor mode pass through.
    fn preprocessor_mode_sound(&self) -> bool {
        true
    }

    /// Other compilers a call runs whose identity the key must cover (nvcc's host compiler), as
    /// (role, file). Keyed by content like the compiler's own programs.
    fn companion_compilers(
        &self,
        _req: &CCompile,
        _cwd: &Path,
        _env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Vec<(String, PathBuf)>, NotCacheable> {
        Ok(Vec::new())
    }

    /// The files a preprocessed source came from (its line markers), in order, without repeats.
    fn included_files(&self, preprocessed: &[u8]) -> Vec<PathBuf>;

    /// Arguments that make a compile also write its dependency listing to `listing`.
    fn dependency_args(&self, listing: &Path) -> Vec<OsString>;

    /// The files a dependency listing (as `dependency_args` or the user's own options write it) names.
    fn dependencies(&self, listing: &[u8]) -> Vec<PathBuf>;

    /// Where a miss learns which files it read (gcc: a Make-style file; MSVC: `/showIncludes` on
    /// stdout; a family without a listing the cache can trust: a preprocessor run).
    fn listing_source(&self) -> ListingSource {
        ListingSource::File
    }

    /// For a `ListingSource::Stdout` family: the files the compile's stdout lists (the source
    /// first; `None` when the listing cannot be read with confidence), and that stdout without the
    /// listing's lines (what the user sees when cachepot, not the user, asked for the listing).
    fn split_listing(&self, req: &CCompile, cwd: &Path, stdout: &[u8]) -> (Option<Vec<PathBuf>>, Vec<u8>) {
        let _ = (req, cwd);
        (None, stdout.to_vec())
    }

    /// The flag that asks for coloured diagnostics when the output is captured.
    fn color_flag(&self) -> &'static str;

    /// The files whose content decides what this compiler produces (the driver and the programs
    /// it runs), each with a role name that does not depend on where it is installed. May run
    /// the driver; the C flow remembers the answer until the driver changes.
    fn programs(&self, driver: &Path) -> std::io::Result<Vec<(String, PathBuf)>>;

    /// What `native` CPU options (`-march=native` …) expand to for this compiler on this CPU, by
    /// asking the compiler; `None` when it cannot tell.
    fn resolve_native(&self, driver: &Path, args: &[OsString]) -> Option<String>;

    /// Arguments that make the compiler record paths under `from` as under `to` in what it writes
    /// (debug info, `__FILE__`), for base directories; none when it has no such option. Given in
    /// order from the outermost directory to the innermost, which must win.
    fn remap_args(&self, _from: &Path, _to: &Path) -> Vec<OsString> {
        Vec::new()
    }

    /// The arguments that compile this request's preprocessed text (the `-E` output) to the same
    /// object, without the input and output names: what a remote worker runs (remote_exec.rs).
    /// `None` when this compiler or request cannot be compiled from its preprocessed text exactly.
    fn preprocessed_compile_args(&self, _req: &CCompile) -> Option<Vec<OsString>> {
        None
    }

    /// Arguments that make the preprocessor run (`-E`) write the request's dependency file exactly
    /// as its compile would, when the compile itself runs elsewhere; `None` when it cannot.
    fn preprocess_dependency_args(&self, _req: &CCompile) -> Option<Vec<OsString>> {
        None
    }

    /// Precompiled headers the compiler could pick up in place of a header (hashed as inputs).
    fn precompiled_headers(&self, req: &CCompile, cwd: &Path) -> Vec<PathBuf>;

    /// The directories to watch for headers that would shadow `read` (the source and the headers
    /// a compile read): where a new file would be found first. `None` when they cannot be learned.
    fn shadowing_candidates(
        &self,
        real: &Path,
        identity: &str,
        req: &CCompile,
        cfg: &Config,
        read: &[PathBuf],
        cwd: &Path,
    ) -> Option<Vec<PathBuf>>;

    /// The directories a `__has_include` probe of the build's own files may search, in order (the
    /// includers' own directories apart), for probes.rs to record where each probed header is or
    /// must stay absent. `None` (the default) when this family's probes are not resolved: a call
    /// whose own files probe for headers is then looked up in preprocessor mode.
    fn probe_search_dirs(&self, real: &Path, identity: &str, req: &CCompile, cfg: &Config) -> Option<Vec<PathBuf>> {
        let _ = (real, identity, req, cfg);
        None
    }
}

/// Where a direct-mode miss learns the files the compile read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingSource {
    /// A Make-style dependency file: `dependency_args(file)` asks for one, or the user's `dep` output.
    File,
    /// The compiler's stdout (MSVC `/showIncludes`): `dependency_args` asks for it (its path is
    /// unused), `split_listing` reads it; a hit replays the stdout the user asked for, byte for byte.
    Stdout,
    /// No listing the cache can rely on: the include set comes from a preprocessor run's line markers.
    Preprocessor,
}

/// How the user wants diagnostics coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Which dependency output the user asked for, which decides how direct mode learns includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DepStyle {
    /// None: cachepot adds its own `-MD -MF <temp>`.
    #[default]
    None,
    /// `-MD` (every header listed): read the user's dependency file.
    UserFull,
    /// `-MMD` (system headers left out), or options that change the listing (-MG): not usable.
    UserWithoutSystem,
}

/// One file a compile writes. The path comes from the command line; the role names it in entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub role: &'static str,
    pub path: PathBuf,
    /// Written only in some configurations (a .dwo without debug info); absence is not an error.
    pub optional: bool,
}

/// A cacheable single-source C-family compile.
#[derive(Debug, Clone)]
pub struct CCompile {
    pub source: PathBuf,
    pub language: String,
    /// Outputs, the object (or assembly) first.
    pub outputs: Vec<Output>,
    /// Arguments that go into the key (outputs and colour flags removed).
    pub key_args: Vec<OsString>,
    /// Arguments for the `-E` run (source included; -c, -o, dependency and colour flags removed).
    pub preprocessor_args: Vec<OsString>,
    /// Files whose content changes the result without passing through the preprocessor.
    pub extra_inputs: Vec<PathBuf>,
    /// `-include` / `-imacros` files.
    pub include_files: Vec<PathBuf>,
    /// `-I`, `-isystem`, `-iquote`, `-idirafter` directories, in order.
    pub include_dirs: Vec<(&'static str, PathBuf)>,
    /// The working directory as the output will record it (debug info, coverage), when it does.
    pub hash_cwd: Option<PathBuf>,
    /// The old sides of the user's own path remappings (`-ffile-prefix-map=OLD=NEW` and friends):
    /// base directories for this call, since the outputs do not name them.
    pub path_maps: Vec<PathBuf>,
    /// The output path, when the object embeds it (.gcda path, .dwo name).
    pub output_path_in_key: Option<PathBuf>,
    pub color: ColorChoice,
    pub dep_style: DepStyle,
    /// The user's dependency-output options as given (`-MD`, `-MT x`, `-MQ x`, `-MP`), for a
    /// preprocessor run that writes the dependency file in the compile's place (remote_exec.rs);
    /// empty for families that do not say.
    pub dep_args: Vec<OsString>,
}

/// Why a call is passed straight to the compiler. Each variant is a statistics counter, named by
/// its stable `id()` (what `--show-stats --json` prints and dashboards key on); `describe()` is the
/// human text. Variants carrying a `&'static str` name the option or feature: that detail is
/// counted apart (`not_cacheable_details`), from fixed strings only, so the table stays bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCacheable {
    Linking,
    PreprocessOnly,
    DependencyOnly,
    MultipleSources,
    NoSource,
    NonSourceInput,
    StdinInput,
    OutputToStdout,
    MissingInput,
    UnsupportedOption,
    UnsupportedLanguage,
    PrecompiledHeader,
    BadArguments,
    DependencyEnv,
    UnknownCompiler,
    PreprocessorFailed,
    CompileFailed,
    /// A question to the compiler (`--version`, `-v`, `-print-*`, rustc `-vV`/`--print`).
    Informational,
    /// An option that makes the compiler write files the cache does not keep.
    ExtraOutputs(&'static str),
    /// `.incbin` in an assembler source: it reads a file no listing names.
    Incbin,
    /// clippy-driver: its lints come from running it.
    ClippyDriver,
    /// Anything else the cache cannot key or restore exactly (the option or feature named).
    TooHard(&'static str),
    /// An input was saved again while the call ran: the compiler may have read other content
    /// than the key holds, so nothing was stored.
    InputChanged,
}

impl NotCacheable {
    /// Every variant, for documentation and the id tests (details filled with a placeholder).
    pub const ALL: &'static [NotCacheable] = &[
        NotCacheable::Linking,
        NotCacheable::PreprocessOnly,
        NotCacheable::DependencyOnly,
        NotCacheable::MultipleSources,
        NotCacheable::NoSource,
        NotCacheable::NonSourceInput,
        NotCacheable::StdinInput,
        NotCacheable::OutputToStdout,
        NotCacheable::MissingInput,
        NotCacheable::UnsupportedOption,
        NotCacheable::UnsupportedLanguage,
        NotCacheable::PrecompiledHeader,
        NotCacheable::BadArguments,
        NotCacheable::DependencyEnv,
        NotCacheable::UnknownCompiler,
        NotCacheable::PreprocessorFailed,
        NotCacheable::CompileFailed,
        NotCacheable::Informational,
        NotCacheable::ExtraOutputs("…"),
        NotCacheable::Incbin,
        NotCacheable::ClippyDriver,
        NotCacheable::TooHard("…"),
        NotCacheable::InputChanged,
    ];

    /// The stable statistics id (snake_case; never changes once released).
    pub fn id(&self) -> &'static str {
        match self {
            NotCacheable::Linking => "linking",
            NotCacheable::PreprocessOnly => "preprocess_only",
            NotCacheable::DependencyOnly => "dependency_only",
            NotCacheable::MultipleSources => "multiple_sources",
            NotCacheable::NoSource => "no_source",
            NotCacheable::NonSourceInput => "non_source_input",
            NotCacheable::StdinInput => "stdin_input",
            NotCacheable::OutputToStdout => "output_to_stdout",
            NotCacheable::MissingInput => "missing_input",
            NotCacheable::UnsupportedOption => "unsupported_option",
            NotCacheable::UnsupportedLanguage => "unsupported_language",
            NotCacheable::PrecompiledHeader => "precompiled_header",
            NotCacheable::BadArguments => "bad_arguments",
            NotCacheable::DependencyEnv => "dependency_env",
            NotCacheable::UnknownCompiler => "unknown_compiler",
            NotCacheable::PreprocessorFailed => "preprocessor_failed",
            NotCacheable::CompileFailed => "compile_failed",
            NotCacheable::Informational => "informational",
            NotCacheable::ExtraOutputs(_) => "extra_outputs",
            NotCacheable::Incbin => "incbin",
            NotCacheable::ClippyDriver => "clippy_driver",
            NotCacheable::TooHard(_) => "too_hard",
            NotCacheable::InputChanged => "input_changed",
        }
    }

    /// The option or feature behind the reason, when there is one.
    pub fn detail(&self) -> Option<&'static str> {
        match self {
            NotCacheable::ExtraOutputs(d) | NotCacheable::TooHard(d) => Some(d),
            _ => None,
        }
    }

    /// The human description (`--show-stats`, logs).
    pub fn describe(&self) -> String {
        let text = match self {
            NotCacheable::Linking => "linking (no -c or -S)",
            NotCacheable::PreprocessOnly => "preprocessing only (-E)",
            NotCacheable::DependencyOnly => "dependency output only (-M/-MM)",
            NotCacheable::MultipleSources => "multiple source files",
            NotCacheable::NoSource => "no source file",
            NotCacheable::NonSourceInput => "input is not a source file",
            NotCacheable::StdinInput => "source from standard input",
            NotCacheable::OutputToStdout => "output to standard output",
            NotCacheable::MissingInput => "input file missing",
            NotCacheable::UnsupportedOption => "unsupported option",
            NotCacheable::UnsupportedLanguage => "unsupported language",
            NotCacheable::PrecompiledHeader => "precompiled header",
            NotCacheable::BadArguments => "bad arguments",
            NotCacheable::DependencyEnv => "DEPENDENCIES_OUTPUT in environment",
            NotCacheable::UnknownCompiler => "unknown compiler",
            NotCacheable::PreprocessorFailed => "preprocessor failed",
            NotCacheable::CompileFailed => "compile failed",
            NotCacheable::Informational => "informational call (version, help, print)",
            NotCacheable::ExtraOutputs(_) => "writes files the cache does not keep",
            NotCacheable::Incbin => ".incbin reads a file no listing names",
            NotCacheable::ClippyDriver => "clippy-driver (lints are not cached)",
            NotCacheable::TooHard(_) => "too hard to cache",
            NotCacheable::InputChanged => "an input changed while it compiled (not stored)",
        };
        match self.detail() {
            Some(d) => format!("{text}: {d}"),
            None => text.to_string(),
        }
    }

    /// The reason from a statistics counter name written by an earlier version (its description
    /// was its name), so an existing cache dir keeps its figures under the new ids.
    pub fn from_old_name(old: &str) -> Option<NotCacheable> {
        let found = NotCacheable::ALL
            .iter()
            .find(|r| r.detail().is_none() && r.describe() == old);
        found.cloned().or(match old {
            ".incbin" => Some(NotCacheable::Incbin),
            "clippy-driver (lints are not cached)" => Some(NotCacheable::ClippyDriver),
            "informational call" | "rustc query (-vV, --print)" => Some(NotCacheable::Informational),
            _ => None,
        })
    }
}

/// The compiler's identity for keys, as `CACHEPOT_COMPILER_CHECK` says: by default the content of
/// its programs (identity.rs), so that the same compiler bytes installed anywhere share entries.
pub fn identity(family: &dyn CFamily, real: &Path, cfg: &Config) -> std::io::Result<String> {
    let driver = real.canonicalize()?;
    let files = match &cfg.compiler_check.value {
        crate::identity::CompilerCheck::Content => {
            crate::identity::programs(&cfg.dir.value, &driver, || {
                // Asking the driver is a compiler run like any other: it takes a slot. (Once per
                // compiler and machine: every later call, hits included, finds it remembered.)
                let _slot = crate::coordinator::slot(cfg);
                family.programs(&driver)
            })?
        }
        _ => vec![("driver".to_string(), driver.clone())],
    };
    crate::identity::of_files(&cfg.dir.value, &cfg.compiler_check.value, &files)
}

/// The identity of everything a call runs: the compiler's own (`identity`) and that of each
/// companion compiler (nvcc's host compiler), each by its own family's programs where it has one.
pub fn call_identity(
    family: &dyn CFamily,
    real: &Path,
    req: &CCompile,
    cwd: &Path,
    cfg: &Config,
) -> Result<String, NotCacheable> {
    let mut id = identity(family, real, cfg).map_err(|e| {
        log::warn!(target: "compile", "cannot identify compiler {}: {e}", real.display());
        NotCacheable::UnknownCompiler
    })?;
    for (role, path) in family.companion_compilers(req, cwd, &|v| std::env::var_os(v))? {
        let companion = match detect(path.as_os_str(), &path) {
            Some(FamilyKind::C(f)) => identity(f, &path, cfg),
            _ => crate::identity::of_files(
                &cfg.dir.value,
                &cfg.compiler_check.value,
                &[("driver".into(), path.clone())],
            ),
        };
        let companion = companion.map_err(|e| {
            log::warn!(target: "compile", "cannot identify {role} {}: {e}", path.display());
            NotCacheable::UnknownCompiler
        })?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        id.push_str(&format!("\n{role} {name} {companion}"));
    }
    Ok(id)
}
