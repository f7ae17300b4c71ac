//! Wind River's diab compiler (`dcc` for C, `dplus` for C++): the argument table from its
//! documented driver syntax and the family behind the `CFamily` trait. No diab can be installed
//! where cachepot is tested: the parser and key inputs have unit tests, and tests/diab.rs drives a
//! stand-in with diab's preprocessor/compiler interface.
//!
//! A miss learns its include set from a preprocessor run (`-E`, whose `# N "file"` lines name
//! each header): the `-Xmake-dependency` listing's format and whether it stops the compile vary
//! between diab versions, so the cache does not add it; the user's own listing (on stdout, or in
//! the `-Xmake-dependency-savefile=` file) is stored and restored like any output.

use super::args::{Flag, ValueStyle, ValueStyle::*, match_flag};
use super::{CCompile, CFamily, ColorChoice, DepStyle, ListingSource, NotCacheable, Output};
use crate::config::Config;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CompileOnly,
    AssembleOnly,
    /// `-E` (to stdout), `-P` (to a `.i` file): preprocess instead of compiling.
    Preprocess,
    Output,
    /// `-Xmake-dependency[=mask]`: a make-dependency listing (stdout, or the savefile).
    DepGen,
    /// `-Xmake-dependency-savefile=file`.
    DepFile,
    /// `-Xmake-dependency-target=name`.
    DepTarget,
    IncludeDir,
    IncludeFile,
    Plain,
    Debug,
    Informational,
    ExtraOutputs(&'static str),
    TooHard(&'static str),
}

use Kind::*;

const fn f(name: &'static str, style: ValueStyle, kind: Kind) -> Flag<Kind> {
    Flag { name, style, kind }
}

/// The diab driver's options (Wind River Diab Compiler user's guide, "Invoking the compiler").
/// Exact names win over prefixes; among prefixes the longest wins.
static TABLE: &[Flag<Kind>] = &[
    f("-c", None, CompileOnly),
    f("-S", None, AssembleOnly),
    f("-E", None, Preprocess),
    f("-P", None, Preprocess),
    f("-o", Separate, Output),
    // -t<processor><object format><float>:<environment>, e.g. -tPPCE500FS:vxworks69.
    f("-t", JoinedOrSeparate, Plain),
    f("-X", Joined, Plain),
    f("-Xmake-dependency", Joined, DepGen),
    f("-Xmake-dependency-savefile=", Joined, DepFile),
    f("-Xmake-dependency-target=", Joined, DepTarget),
    f("-Xmake-dependency-canonicalize-path-off", None, Plain),
    f("-Xkeep-", Joined, ExtraOutputs("-Xkeep-*")),
    // -Wa,… -Wl,… pass options to a tool; -WD<var>=<value> sets a configuration variable;
    // -Wm <file> names a linker command file.
    f("-W", Joined, Plain),
    f("-I", JoinedOrSeparate, IncludeDir),
    f("-D", JoinedOrSeparate, Plain),
    f("-U", JoinedOrSeparate, Plain),
    f("-Y", Joined, Plain),
    f("-include", JoinedOrSeparate, IncludeFile),
    f("-i", Joined, TooHard("-i (include file substitution)")),
    f("-O", Joined, Plain),
    f("-g", Joined, Debug),
    f("-w", None, Plain),
    f("-L", JoinedOrSeparate, Plain),
    f("-l", JoinedOrSeparate, Plain),
    f("-V", None, Informational),
    f("-VV", None, Informational),
    f("-#", None, TooHard("-#")),
    f("-##", None, TooHard("-#")),
    f("-###", None, Informational),
    f("-@E", Joined, TooHard("-@E/-@O (output redirection)")),
    f("-@O", Joined, TooHard("-@E/-@O (output redirection)")),
    f("-@@", Joined, TooHard("-@@")),
];

/// Environment variables that change what diab produces: its installation, the default target
/// (`DTARGET`, `DOBJECT`, `DFP`, `DENVIRON`), its configuration file and `DFLAGS` (options read
/// before the command line's, and parsed as such here).
pub const KEY_ENV: &[&str] = &[
    "DIABLIB",
    "DTARGET",
    "DOBJECT",
    "DFP",
    "DENVIRON",
    "DCONFIG",
    "DFLAGS",
    "SOURCE_DATE_EPOCH",
    "LANG",
    "LC_ALL",
];

pub struct Diab;

pub static DIAB: Diab = Diab;

/// `dcc` or `dplus` (with a version suffix, e.g. `dcc-5.9`).
pub fn from_name(name: &str) -> Option<&'static dyn CFamily> {
    let base = match name.rfind('-') {
        Some(pos) if name[pos + 1..].bytes().all(|b| b.is_ascii_digit() || b == b'.') => &name[..pos],
        _ => name,
    };
    matches!(base, "dcc" | "dplus").then_some(&DIAB as &'static dyn CFamily)
}

impl CFamily for Diab {
    fn name(&self) -> &'static str {
        "diab"
    }

    /// `-@name` is expanded in `parse`, where the environment is at hand (it names a variable
    /// first, a file second).
    fn expand_args(&self, args: &[OsString], _cwd: &Path) -> Result<Vec<OsString>, String> {
        Ok(args.to_vec())
    }

    fn parse(
        &self,
        args: &[OsString],
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<CCompile, NotCacheable> {
        parse(args, cwd, env)
    }

    fn key_env(&self) -> &'static [&'static str] {
        KEY_ENV
    }

    fn included_files(&self, preprocessed: &[u8]) -> Vec<PathBuf> {
        super::msvc::line_directives(preprocessed)
    }

    fn dependency_args(&self, _listing: &Path) -> Vec<OsString> {
        Vec::new()
    }

    fn dependencies(&self, listing: &[u8]) -> Vec<PathBuf> {
        super::gcc::depfile::prerequisites(listing)
    }

    fn listing_source(&self) -> ListingSource {
        ListingSource::Preprocessor
    }

    fn color_flag(&self) -> &'static str {
        // diab does not colour (calls are parsed with colour off, so this is not asked).
        ""
    }

    /// The driver and the programs beside it that do the work: the C and C++ compilers proper
    /// (`ctoa`, `dtoa`, `etoa`), the assembler (`das`) and the preprocessor (`dcpp`).
    fn programs(&self, driver: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
        let mut files = vec![("driver".to_string(), driver.to_path_buf())];
        if let Some(dir) = driver.parent() {
            for prog in ["ctoa", "dtoa", "etoa", "das", "dcpp"] {
                let p = dir.join(prog);
                if p.is_file() {
                    files.push((prog.to_string(), p));
                }
            }
        }
        Ok(files)
    }

    fn resolve_native(&self, _driver: &Path, _args: &[OsString]) -> Option<String> {
        Option::None
    }

    fn precompiled_headers(&self, _req: &CCompile, _cwd: &Path) -> Vec<PathBuf> {
        Vec::new()
    }

    /// The `-I` directories, then the directories of the headers read outside them (diab's own
    /// include directories are searched after every `-I`; their order is taken from the order
    /// the headers were read in).
    fn shadowing_candidates(
        &self,
        _real: &Path,
        _identity: &str,
        req: &CCompile,
        _cfg: &Config,
        read: &[PathBuf],
        cwd: &Path,
    ) -> Option<Vec<PathBuf>> {
        let mut chain: Vec<PathBuf> = req.include_dirs.iter().map(|(_, d)| d.clone()).collect();
        for file in read.iter().skip(1) {
            let under_user_dir = chain.iter().any(|d| file.starts_with(d));
            if let Some(parent) = file.parent()
                && !under_user_dir
                && !chain.iter().any(|d| d == parent)
            {
                chain.push(parent.to_path_buf());
            }
        }
        Some(super::gcc::include_search::must_be_absent(read, &chain, cwd))
    }
}

/// Parse one dcc/dplus call: the options of `DFLAGS`, then `args` with every `-@name` replaced by
/// the options in the variable `name` or, when there is none, in the file `name`.
pub fn parse(args: &[OsString], cwd: &Path, env: &dyn Fn(&str) -> Option<OsString>) -> Result<CCompile, NotCacheable> {
    let mut all = Vec::new();
    if let Some(v) = env("DFLAGS") {
        all.extend(super::args::split_response_file(v.as_bytes()));
    }
    expand_at(args, cwd, env, 0, &mut all)?;
    let mut p = State::default();
    let mut i = 0;
    while i < all.len() {
        let arg = &all[i];
        let bytes = arg.as_bytes();
        if bytes == b"-" {
            return Err(NotCacheable::StdinInput);
        }
        if !bytes.starts_with(b"-") {
            p.add_input(arg, cwd)?;
            i += 1;
            continue;
        }
        let (m, used) = match match_flag(TABLE, &all, i) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                log::debug!(target: "diab", "{e}");
                return Err(NotCacheable::BadArguments);
            }
            Option::None => {
                log::debug!(target: "diab", "unsupported option {}", arg.to_string_lossy());
                return Err(NotCacheable::UnsupportedOption);
            }
        };
        i += used;
        p.apply(m.kind, m.value, &m.raw)?;
    }
    p.finish(cwd)
}

/// Replace `-@name` (not `-@@`, `-@E…`, `-@O…`, which the table knows) by its options.
fn expand_at(
    args: &[OsString],
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
    depth: u32,
    out: &mut Vec<OsString>,
) -> Result<(), NotCacheable> {
    for a in args {
        let b = a.as_bytes();
        let is_at = b.len() > 2 && b.starts_with(b"-@") && !matches!(b[2], b'@' | b'E' | b'O');
        if !is_at {
            out.push(a.clone());
            continue;
        }
        if depth >= 16 {
            return Err(NotCacheable::BadArguments);
        }
        let name = OsStr::from_bytes(&b[2..]);
        let text = match name.to_str().and_then(env) {
            Some(v) => v.into_vec(),
            Option::None => std::fs::read(cwd.join(name)).map_err(|_| NotCacheable::BadArguments)?,
        };
        let inner = super::args::split_response_file(&text);
        expand_at(&inner, cwd, env, depth + 1, out)?;
    }
    Ok(())
}

#[derive(Default)]
struct State {
    mode: Option<Kind>,
    output: Option<OsString>,
    source: Option<(PathBuf, &'static str)>,
    dep_gen: bool,
    dep_file: Option<OsString>,
    dep_target_given: bool,
    key_args: Vec<OsString>,
    preprocessor_args: Vec<OsString>,
    include_files: Vec<PathBuf>,
    include_dirs: Vec<(&'static str, PathBuf)>,
    debug: bool,
    non_source_input: bool,
}

impl State {
    fn add_input(&mut self, arg: &OsString, cwd: &Path) -> Result<(), NotCacheable> {
        let path = PathBuf::from(arg);
        let ext = path.extension().and_then(OsStr::to_str).unwrap_or("");
        let lang = match ext {
            "c" => "c",
            "cpp" | "cc" | "cxx" | "C" | "c++" => "c++",
            "s" | "S" => return Err(NotCacheable::UnsupportedLanguage),
            _ => {
                // An object or library: a link (decided in finish, where -c is known).
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
        self.preprocessor_args.push(arg.clone());
        self.source = Some((path, lang));
        Ok(())
    }

    fn apply(&mut self, kind: Kind, value: Option<OsString>, raw: &[OsString]) -> Result<(), NotCacheable> {
        let value_path = || PathBuf::from(value.clone().unwrap_or_default());
        let mut hashed = true;
        let mut to_preprocessor = true;
        match kind {
            CompileOnly | AssembleOnly => {
                if self.mode != Some(AssembleOnly) {
                    self.mode = Some(kind);
                }
                to_preprocessor = false;
            }
            Preprocess => return Err(NotCacheable::PreprocessOnly),
            Output => {
                self.output = value;
                hashed = false;
                to_preprocessor = false;
            }
            DepGen => {
                self.dep_gen = true;
                to_preprocessor = false;
            }
            DepFile => {
                self.dep_file = value;
                hashed = false;
                to_preprocessor = false;
                self.key_args.push(OsString::from("-Xmake-dependency-savefile"));
            }
            DepTarget => {
                self.dep_target_given = true;
                to_preprocessor = false;
            }
            IncludeDir => self.include_dirs.push(("-I", value_path())),
            IncludeFile => self.include_files.push(value_path()),
            Plain => {}
            Debug => self.debug = !raw[0].as_bytes().ends_with(b"-g0"),
            Informational => return Err(NotCacheable::Informational),
            ExtraOutputs(o) => return Err(NotCacheable::ExtraOutputs(o)),
            TooHard(r) => return Err(NotCacheable::TooHard(r)),
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
        let Some(mode) = self.mode else {
            return Err(NotCacheable::Linking);
        };
        if self.non_source_input {
            return Err(NotCacheable::NonSourceInput);
        }
        let Some((source, language)) = self.source else {
            return Err(NotCacheable::NoSource);
        };
        let ext = if mode == AssembleOnly { "s" } else { "o" };
        let object = match &self.output {
            Some(o) => PathBuf::from(o),
            Option::None => PathBuf::from(source.file_stem().unwrap_or_default()).with_extension(ext),
        };
        let mut outputs = vec![Output {
            role: "object",
            path: object.clone(),
            optional: false,
        }];
        let mut key_args = self.key_args;
        if self.dep_gen {
            if let Some(file) = &self.dep_file {
                outputs.push(Output {
                    role: "dep",
                    path: PathBuf::from(file),
                    optional: false,
                });
            }
            if !self.dep_target_given {
                // The listing's target is the object path as written on the command line.
                key_args.push(OsString::from("<dep target>"));
                key_args.push(object.clone().into_os_string());
            }
        }
        Ok(CCompile {
            source,
            language: language.to_string(),
            outputs,
            key_args,
            preprocessor_args: self.preprocessor_args,
            extra_inputs: Vec::new(),
            include_files: self.include_files,
            include_dirs: self.include_dirs,
            // DWARF records the compile directory.
            hash_cwd: self.debug.then(|| cwd.to_path_buf()),
            path_maps: Vec::new(),
            output_path_in_key: Option::None,
            color: ColorChoice::Never,
            dep_style: DepStyle::None,
            dep_args: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("cachepot-diab-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.c"), "int x;").unwrap();
        std::fs::write(d.join("b.cpp"), "int y;").unwrap();
        std::fs::write(d.join("opts"), "-c -tPPCE500FS:vxworks69 -DFROM_FILE").unwrap();
        d
    }

    fn parse_env(d: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<CCompile, NotCacheable> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(&args, d, &|var| {
            env.iter().find(|(k, _)| k == var).map(|(_, v)| OsString::from(v))
        })
    }

    fn p(d: &Path, args: &[&str]) -> Result<CCompile, NotCacheable> {
        parse_env(d, args, &[])
    }

    #[test]
    fn names() {
        assert!(from_name("dcc").is_some());
        assert!(from_name("dplus").is_some());
        assert!(from_name("dcc-5.9.6").is_some());
        assert!(from_name("dccx").is_none());
        assert!(from_name("gcc").is_none());
    }

    #[test]
    fn simple_compile() {
        let d = dir();
        let c = p(
            &d,
            &[
                "-c",
                "-tPPCE500FS:vxworks69",
                "-O",
                "-Iinc",
                "-DX=1",
                "a.c",
                "-o",
                "out/a.o",
            ],
        )
        .unwrap();
        assert_eq!(c.outputs[0].path, PathBuf::from("out/a.o"));
        assert_eq!(c.language, "c");
        assert_eq!(c.include_dirs, vec![("-I", PathBuf::from("inc"))]);
        assert!(c.key_args.iter().any(|a| a == "-tPPCE500FS:vxworks69"));
        assert!(c.key_args.iter().all(|a| a != "out/a.o"));
        assert!(c.preprocessor_args.iter().all(|a| a != "-c"));
        assert_eq!(p(&d, &["-c", "a.c"]).unwrap().outputs[0].path, PathBuf::from("a.o"));
        assert_eq!(p(&d, &["-S", "a.c"]).unwrap().outputs[0].path, PathBuf::from("a.s"));
        assert_eq!(p(&d, &["-c", "b.cpp"]).unwrap().language, "c++");
        // -t and its value may be separate.
        let sep = p(&d, &["-c", "-t", "PPCE500FS:vxworks69", "a.c"]).unwrap();
        assert!(sep.key_args.iter().any(|a| a == "PPCE500FS:vxworks69"));
    }

    #[test]
    fn make_dependency_family() {
        let d = dir();
        let c = p(
            &d,
            &[
                "-c",
                "a.c",
                "-o",
                "a.o",
                "-Xmake-dependency=0xd",
                "-Xmake-dependency-savefile=a.d",
            ],
        )
        .unwrap();
        assert_eq!(c.outputs[1].role, "dep");
        assert_eq!(c.outputs[1].path, PathBuf::from("a.d"));
        assert!(c.key_args.iter().any(|a| a == "-Xmake-dependency=0xd"));
        assert!(
            c.key_args.iter().any(|a| a == "<dep target>"),
            "the default target is the object path"
        );
        assert!(c.key_args.iter().all(|a| a != "-Xmake-dependency-savefile=a.d"));
        assert!(c.preprocessor_args.iter().all(|a| !a.as_bytes().starts_with(b"-Xmake")));
        let c = p(
            &d,
            &["-c", "a.c", "-Xmake-dependency", "-Xmake-dependency-target=lib(a.o)"],
        )
        .unwrap();
        assert_eq!(c.outputs.len(), 1, "the listing goes to stdout, which is replayed");
        assert!(c.key_args.iter().all(|a| a != "<dep target>"));
        assert!(p(&d, &["-c", "a.c", "-Xmake-dependency-canonicalize-path-off"]).is_ok());
    }

    #[test]
    fn at_files_and_dflags() {
        let d = dir();
        let c = p(&d, &["-@opts", "a.c"]).unwrap();
        assert!(c.key_args.iter().any(|a| a == "-DFROM_FILE"));
        // A variable of that name wins over the file.
        let c = parse_env(&d, &["-@opts", "a.c"], &[("opts", "-c -DFROM_ENV")]).unwrap();
        assert!(c.key_args.iter().any(|a| a == "-DFROM_ENV"));
        assert!(c.key_args.iter().all(|a| a != "-DFROM_FILE"));
        let c = parse_env(&d, &["a.c"], &[("DFLAGS", "-c -Xfoo")]).unwrap();
        assert!(c.key_args.iter().any(|a| a == "-Xfoo"));
        assert_eq!(
            p(&d, &["-c", "a.c", "-@missing"]).unwrap_err(),
            NotCacheable::BadArguments
        );
        assert!(matches!(
            p(&d, &["-c", "a.c", "-@E=errs"]),
            Err(NotCacheable::TooHard(_))
        ));
    }

    #[test]
    fn not_cacheable_reasons() {
        let d = dir();
        assert_eq!(p(&d, &["a.c", "-o", "a.out"]).unwrap_err(), NotCacheable::Linking);
        assert_eq!(p(&d, &["-E", "a.c"]).unwrap_err(), NotCacheable::PreprocessOnly);
        assert_eq!(p(&d, &["-P", "a.c"]).unwrap_err(), NotCacheable::PreprocessOnly);
        assert_eq!(
            p(&d, &["-c", "a.c", "b.cpp"]).unwrap_err(),
            NotCacheable::MultipleSources
        );
        assert_eq!(p(&d, &["-c", "a.o"]).unwrap_err(), NotCacheable::NonSourceInput);
        assert_eq!(p(&d, &["-c", "nope.c"]).unwrap_err(), NotCacheable::MissingInput);
        assert_eq!(
            p(&d, &["-c", "a.c", "-frob"]).unwrap_err(),
            NotCacheable::UnsupportedOption
        );
        assert_eq!(p(&d, &["-V"]).unwrap_err(), NotCacheable::Informational);
        assert_eq!(p(&d, &["-c", "a.c", "-o"]).unwrap_err(), NotCacheable::BadArguments);
        assert_eq!(
            p(&d, &["-c", "a.c", "-Xkeep-assembly-file"]).unwrap_err(),
            NotCacheable::ExtraOutputs("-Xkeep-*")
        );
    }

    /// Walk the table: every keyed row changes the key; outputs stay out of it.
    #[test]
    fn every_keyed_row_changes_the_key() {
        let d = dir();
        let base = p(&d, &["-c", "a.c"]).unwrap().key_args;
        let mut checked = 0;
        for row in TABLE {
            let arg = match row.style {
                ValueStyle::None => row.name.to_string(),
                _ => format!("{}v1", row.name),
            };
            match (row.kind, p(&d, &["-c", "a.c", &arg])) {
                (Plain | IncludeDir | IncludeFile | Debug | DepGen | DepTarget, Ok(c)) => {
                    assert_ne!(c.key_args, base, "{arg}");
                    checked += 1;
                }
                (Output | DepFile, Ok(c)) => {
                    assert!(c.key_args.iter().all(|a| !a.as_bytes().ends_with(b"v1")), "{arg}")
                }
                _ => {}
            }
        }
        assert!(checked > 10, "{checked}");
    }

    #[test]
    fn key_inputs() {
        let d = dir();
        let base = p(&d, &["-c", "a.c"]).unwrap().key_args;
        for flag in [
            "-tPPC860ES:vxworks55",
            "-XO",
            "-Xlocal-data-area=0",
            "-DX",
            "-Iinc",
            "-O",
            "-WDDOBJECT=E",
        ] {
            assert_ne!(p(&d, &["-c", "a.c", flag]).unwrap().key_args, base, "{flag}");
        }
        assert!(
            p(&d, &["-c", "a.c", "-g"]).unwrap().hash_cwd.is_some(),
            "DWARF records the directory"
        );
        assert!(p(&d, &["-c", "a.c"]).unwrap().hash_cwd.is_none());
        for var in ["DTARGET", "DIABLIB", "DFLAGS"] {
            assert!(DIAB.key_env().contains(&var), "{var}");
        }
    }
}
