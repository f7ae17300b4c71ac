//! Compiler families: which compiler a call is for, and the typed request its arguments describe.
//! `args.rs` holds the shared flag-table machinery; each family has its own file.

pub mod args;
pub mod gcc;
pub mod rustc;

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Gcc,
    Clang,
}

impl Family {
    /// The family for a compiler invoked as `invoked`, whose real file is `real`. The name it was
    /// invoked by decides (`cc` may be clang); the resolved file name is the fallback.
    pub fn detect(invoked: &OsStr, real: &Path) -> Option<Family> {
        let name = Path::new(invoked).file_name()?.to_str()?;
        gcc::family_from_name(name).or_else(|| {
            let resolved = real.canonicalize().ok()?;
            gcc::family_from_name(resolved.file_name()?.to_str()?)
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Gcc => "gcc",
            Family::Clang => "clang",
        }
    }
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
    pub family: Family,
    pub source: PathBuf,
    pub language: String,
    /// Outputs, the object (or assembly) first.
    pub outputs: Vec<Output>,
    /// Arguments that go into the key (outputs and colour flags removed).
    pub key_args: Vec<std::ffi::OsString>,
    /// Arguments for the `-E` run (source included; -c, -o, dependency and colour flags removed).
    pub preprocessor_args: Vec<std::ffi::OsString>,
    /// Files whose content changes the result without passing through the preprocessor.
    pub extra_inputs: Vec<PathBuf>,
    /// `-include` / `-imacros` files.
    pub include_files: Vec<PathBuf>,
    /// `-I`, `-isystem`, `-iquote`, `-idirafter` directories, in order.
    pub include_dirs: Vec<(&'static str, PathBuf)>,
    /// The working directory as the output will record it (debug info, coverage), when it does.
    pub hash_cwd: Option<PathBuf>,
    /// The output path, when the object embeds it (.gcda path, .dwo name).
    pub output_path_in_key: Option<PathBuf>,
    pub color: ColorChoice,
    pub dep_style: DepStyle,
}

/// Why a call is passed straight to the compiler. Each variant is a statistics counter.
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
    TooHard(&'static str),
}

impl NotCacheable {
    /// The reason as shown by `--show-stats` (and used as the counter name).
    pub fn reason(&self) -> String {
        match self {
            NotCacheable::Linking => "linking (no -c or -S)".into(),
            NotCacheable::PreprocessOnly => "preprocessing only (-E)".into(),
            NotCacheable::DependencyOnly => "dependency output only (-M/-MM)".into(),
            NotCacheable::MultipleSources => "multiple source files".into(),
            NotCacheable::NoSource => "no source file".into(),
            NotCacheable::NonSourceInput => "input is not a source file".into(),
            NotCacheable::StdinInput => "source from standard input".into(),
            NotCacheable::OutputToStdout => "output to standard output".into(),
            NotCacheable::MissingInput => "input file missing".into(),
            NotCacheable::UnsupportedOption => "unsupported option".into(),
            NotCacheable::UnsupportedLanguage => "unsupported language".into(),
            NotCacheable::PrecompiledHeader => "precompiled header".into(),
            NotCacheable::BadArguments => "bad arguments".into(),
            NotCacheable::DependencyEnv => "DEPENDENCIES_OUTPUT in environment".into(),
            NotCacheable::UnknownCompiler => "unknown compiler".into(),
            NotCacheable::PreprocessorFailed => "preprocessor failed".into(),
            NotCacheable::CompileFailed => "compile failed".into(),
            NotCacheable::TooHard(what) => (*what).into(),
        }
    }
}

/// The compiler's identity for keys: its resolved path, size and mtime. Package upgrades change the
/// mtime; this needs no compiler run, so a hit never starts one.
pub fn identity(real: &Path) -> std::io::Result<String> {
    let resolved = real.canonicalize()?;
    let m = std::fs::metadata(&resolved)?;
    Ok(format!(
        "{} size={} mtime={}.{}",
        resolved.display(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}
