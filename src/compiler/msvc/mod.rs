//! MSVC: Microsoft's cl.exe and LLVM's clang-cl (clang's MSVC-compatible driver). The argument
//! table (both `/x` and `-x` spellings), the parse of one call into a `CCompile` or the reason it
//! is not cacheable, and the family behind the `CFamily` trait: a miss learns its headers from
//! `/showIncludes` on stdout (`show_includes.rs`); response files may be UTF-16 (`rsp.rs`).
//!
//! PDBs: `/Zi` and `/ZI` make cl.exe write debug info into a PDB shared by every compile that
//! names it (`/Fd`, default `vc140.pdb`), so a cl.exe call with them is not cacheable. clang-cl
//! never writes a PDB: its `/Zi` puts CodeView into the object like `/Z7`, and it ignores `/ZI`,
//! so both are cached there. `/Z7` (CodeView in the object) is cached for both; such an object
//! records the working directory and its own absolute path, so both are keyed.

pub mod rsp;
pub mod show_includes;
mod table;

use super::args::match_flag;
use super::{CCompile, CFamily, ColorChoice, DepStyle, ListingSource, NotCacheable, Output};
use crate::config::Config;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use table::{CLANG_TABLE, Kind, Kind::*, TABLE};

/// Environment variables that change what cl.exe or clang-cl produce or print. `CL` and `_CL_`
/// hold options (read before and after the command line's) and are parsed too.
pub const KEY_ENV: &[&str] = &[
    "INCLUDE",
    "EXTERNAL_INCLUDE",
    "CL",
    "_CL_",
    "VSLANG",
    "VCToolsInstallDir",
    "VCINSTALLDIR",
    "VSINSTALLDIR",
    "WindowsSdkDir",
    "WindowsSDKVersion",
    "UniversalCRTSdkDir",
    "UCRTVersion",
    "SOURCE_DATE_EPOCH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
];

/// cl.exe or clang-cl: one argument table, a few differences (PDBs, colour, where the
/// compiler's own include directories come from).
pub struct Msvc {
    pub clang: bool,
}

pub static CL: Msvc = Msvc { clang: false };
pub static CLANG_CL: Msvc = Msvc { clang: true };

/// The family of a compiler name (`cl`, `cl.exe`, `clang-cl`, `clang-cl-14`), if MSVC. A `cl.exe`
/// whose real file is clang is clang-cl (clang selects its MSVC driver by the name it is run as).
pub fn from_name(name: &str, real: &Path) -> Option<&'static dyn CFamily> {
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_suffix(".exe").unwrap_or(&lower);
    let versioned = |b: &str| {
        b.strip_prefix("clang-cl-")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit() || c == b'.'))
    };
    if base == "clang-cl" || versioned(base) {
        return Some(&CLANG_CL);
    }
    if base != "cl" {
        return Option::None;
    }
    let real_name = real
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if real_name.starts_with("clang") {
        Some(&CLANG_CL)
    } else {
        Some(&CL)
    }
}

impl CFamily for Msvc {
    fn name(&self) -> &'static str {
        if self.clang { "clang-cl" } else { "cl.exe" }
    }

    fn expand_args(&self, args: &[OsString], cwd: &Path) -> Result<Vec<OsString>, String> {
        rsp::expand(args, cwd)
    }

    fn parse(
        &self,
        args: &[OsString],
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<CCompile, NotCacheable> {
        parse(args, cwd, env, self.clang)
    }

    fn key_env(&self) -> &'static [&'static str] {
        KEY_ENV
    }

    fn preprocess_args(&self, req: &CCompile) -> Vec<OsString> {
        let mut a = req.preprocessor_args.clone();
        a.push(OsString::from("/E"));
        a
    }

    fn included_files(&self, preprocessed: &[u8]) -> Vec<PathBuf> {
        line_directives(preprocessed)
    }

    fn dependency_args(&self, _listing: &Path) -> Vec<OsString> {
        vec![OsString::from("/showIncludes")]
    }

    fn dependencies(&self, listing: &[u8]) -> Vec<PathBuf> {
        show_includes::split(listing, Path::new("/")).0.unwrap_or_default()
    }

    fn listing_source(&self) -> ListingSource {
        ListingSource::Stdout
    }

    fn split_listing(&self, req: &CCompile, cwd: &Path, stdout: &[u8]) -> (Option<Vec<PathBuf>>, Vec<u8>) {
        let (headers, rest) = show_includes::split(stdout, cwd);
        let listed = headers.map(|h| std::iter::once(req.source.clone()).chain(h).collect());
        (listed, rest)
    }

    fn color_flag(&self) -> &'static str {
        // Only clang-cl colours (cl.exe calls are parsed with colour off, so this is not asked).
        "-fcolor-diagnostics"
    }

    /// clang-cl: what clang's are (the binary and the LLVM libraries it loads). cl.exe: the
    /// driver and the compiler DLLs beside it (front ends c1/c1xx, back end c2).
    fn programs(&self, driver: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
        if self.clang {
            return super::gcc::CLANG.programs(driver);
        }
        let mut files = vec![("driver".to_string(), driver.to_path_buf())];
        if let Some(dir) = driver.parent() {
            for dll in ["c1.dll", "c1xx.dll", "c2.dll"] {
                let p = dir.join(dll);
                if p.is_file() {
                    files.push((dll.to_string(), p));
                }
            }
        }
        Ok(files)
    }

    fn resolve_native(&self, _driver: &Path, _args: &[OsString]) -> Option<String> {
        // MSVC has no `native`; clang-cl's `-march=native` is not explained here (not cached).
        Option::None
    }

    fn precompiled_headers(&self, req: &CCompile, _cwd: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut args = req.key_args.iter();
        while let Some(a) = args.next() {
            if a == PCH_MARKER
                && let Some(p) = args.next()
            {
                found.push(PathBuf::from(p));
            }
        }
        found
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
        let no_std = req.key_args.iter().any(|a| a.as_bytes().get(1..) == Some(&b"X"[..]));
        let system = if self.clang {
            clang_cl_system_dirs(real, identity, no_std, cfg)?
        } else if no_std {
            Vec::new()
        } else {
            // cl.exe reads INCLUDE as a `;`-separated list.
            std::env::var_os("INCLUDE")
                .map(|v| {
                    v.as_bytes()
                        .split(|&b| b == b';')
                        .filter(|d| !d.is_empty())
                        .map(|d| PathBuf::from(OsStr::from_bytes(d)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut chain: Vec<PathBuf> = req.include_dirs.iter().map(|(_, d)| d.clone()).collect();
        chain.extend(system);
        Some(super::gcc::include_search::must_be_absent(read, &chain, cwd))
    }
}

/// In `key_args`, names the precompiled header a `/Yu` compile reads (hashed as an input).
const PCH_MARKER: &str = "<pch file>";

/// clang-cl's own `#include <…>` directories (its resource dir, then `INCLUDE` unless `/X`),
/// from `clang-cl -v /E`, remembered in the cache directory per compiler, `/X` and `INCLUDE`.
fn clang_cl_system_dirs(real: &Path, identity: &str, no_std: bool, cfg: &Config) -> Option<Vec<PathBuf>> {
    let include = std::env::var_os("INCLUDE").unwrap_or_default();
    let id = format!("clang-cl\n{identity}\n{no_std}\n{}\n", include.to_string_lossy());
    let file = cfg
        .dir
        .value
        .join("search-dirs")
        .join(&crate::key::sha256_hex(id.as_bytes())[..32]);
    if let Ok(text) = std::fs::read_to_string(&file) {
        return Some(text.lines().map(PathBuf::from).collect());
    }
    let _slot = crate::coordinator::slot(cfg);
    let mut cmd = std::process::Command::new(real);
    if no_std {
        cmd.arg("/X");
    }
    let out = cmd
        .args(["-v", "/E", "/Tc/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .env(crate::locate::GUARD_VAR, crate::locate::guard_value())
        .output()
        .ok()?;
    let dirs = super::gcc::include_search::parse_verbose(&out.stderr)?;
    let text: String = dirs.iter().map(|d| format!("{}\n", d.display())).collect();
    let _ = crate::atomic::write(&file, text.as_bytes());
    Some(dirs)
}

/// The files a preprocessed source came from: clang-cl writes `# 12 "inc/h.h" 1`, cl.exe
/// `#line 12 "c:\\src\\h.h"` (backslashes doubled).
pub fn line_directives(preprocessed: &[u8]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in preprocessed.split(|&b| b == b'\n') {
        let line = line.trim_ascii_start();
        let Some(rest) = line.strip_prefix(b"#line ").or_else(|| line.strip_prefix(b"# ")) else {
            continue;
        };
        let Some(q) = rest.iter().position(|&b| b == b'"') else {
            continue;
        };
        let mut path = Vec::new();
        let mut i = q + 1;
        while i < rest.len() && rest[i] != b'"' {
            if rest[i] == b'\\' && i + 1 < rest.len() {
                i += 1;
            }
            path.push(rest[i]);
            i += 1;
        }
        if path.is_empty() || path.starts_with(b"<") {
            continue;
        }
        if seen.insert(path.clone()) {
            out.push(PathBuf::from(OsString::from_vec(path)));
        }
    }
    out
}

/// Parse one cl.exe / clang-cl call: the options of `CL`, then `args` (already expanded from
/// response files), then those of `_CL_`, as the compiler itself reads them.
pub fn parse(
    args: &[OsString],
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
    clang: bool,
) -> Result<CCompile, NotCacheable> {
    let mut all: Vec<OsString> = Vec::new();
    if let Some(v) = env("CL") {
        all.extend(rsp::split_windows(v.as_bytes()));
    }
    all.extend(args.iter().cloned());
    if let Some(v) = env("_CL_") {
        all.extend(rsp::split_windows(v.as_bytes()));
    }
    let mut p = State {
        clang,
        color: if clang { ColorChoice::Auto } else { ColorChoice::Never },
        ..State::default()
    };
    let mut i = 0;
    let mut only_inputs = false;
    while i < all.len() {
        let arg = &all[i];
        let bytes = arg.as_bytes();
        if only_inputs {
            p.add_input(arg, Option::None, vec![arg.clone()])?;
            i += 1;
            continue;
        }
        if bytes == b"--" {
            only_inputs = true;
            p.key_args.push(arg.clone());
            p.preprocessor_args.push(arg.clone());
            i += 1;
            continue;
        }
        if bytes == b"-" {
            return Err(NotCacheable::StdinInput);
        }
        if !(bytes.starts_with(b"/") || bytes.starts_with(b"-")) {
            p.add_input(arg, Option::None, vec![arg.clone()])?;
            i += 1;
            continue;
        }
        let found = match lookup(&all, i) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                log::debug!(target: "msvc", "{e}");
                return Err(NotCacheable::BadArguments);
            }
            Option::None if bytes.starts_with(b"/") && cwd.join(arg).is_file() => {
                // An absolute path that is no option: an input, as clang-cl reads it.
                p.add_input(arg, Option::None, vec![arg.clone()])?;
                i += 1;
                continue;
            }
            Option::None => {
                log::debug!(target: "msvc", "unsupported option {}", arg.to_string_lossy());
                return Err(NotCacheable::UnsupportedOption);
            }
        };
        let (kind, value, raw, used) = found;
        if kind == Link {
            // Everything after /link is for the linker. With /c there is no link, but an option
            // a miss adds (/showIncludes) would land among the linker's: not cached.
            if p.compile {
                return Err(NotCacheable::TooHard("/link with /c"));
            }
            return Err(NotCacheable::Linking);
        }
        i += used;
        p.apply(kind, value, raw, cwd)?;
    }
    p.finish(cwd)
}

type Found = (Kind, Option<OsString>, Vec<OsString>, usize);

/// Match `args[i]`: clang's dash options first, then cl.exe's table without the leading `/`/`-`.
fn lookup(args: &[OsString], i: usize) -> Option<Result<Found, String>> {
    if args[i].as_bytes().starts_with(b"-")
        && let Some(r) = match_flag(CLANG_TABLE, args, i)
    {
        return Some(r.map(|(m, used)| (m.kind, m.value, m.raw, used)));
    }
    let stripped = OsString::from_vec(args[i].as_bytes()[1..].to_vec());
    let mut view = vec![stripped];
    if let Some(next) = args.get(i + 1) {
        view.push(next.clone());
    }
    let r = match_flag(TABLE, &view, 0)?;
    Some(r.map(|(m, used)| {
        // `/c` and `-c` are one option: keyed (and passed to the preprocessor) as `-c`, the
        // spelling in which base directories find the path in `-I/abs/dir`.
        let mut raw = args[i..i + used].to_vec();
        let mut dash = b"-".to_vec();
        dash.extend_from_slice(&raw[0].as_bytes()[1..]);
        raw[0] = OsString::from_vec(dash);
        (m.kind, m.value, raw, used)
    }))
}

#[derive(Default)]
struct State {
    clang: bool,
    compile: bool,
    output: Option<OsString>,
    all_as: Option<&'static str>,
    /// Each input: its path, the language a `/Tc`/`/Tp` gave it.
    inputs: Vec<(PathBuf, Option<&'static str>)>,
    key_args: Vec<OsString>,
    preprocessor_args: Vec<OsString>,
    extra_inputs: Vec<PathBuf>,
    include_files: Vec<PathBuf>,
    include_dirs: Vec<(&'static str, PathBuf)>,
    debug: bool,
    full_paths: bool,
    dep_style: DepStyle,
    pch_use: Option<OsString>,
    pch_file: Option<OsString>,
    source_deps: Option<OsString>,
    color: ColorChoice,
}

impl State {
    fn add_input(
        &mut self,
        arg: &OsString,
        lang: Option<&'static str>,
        raw: Vec<OsString>,
    ) -> Result<(), NotCacheable> {
        if arg.as_bytes() == b"-" {
            return Err(NotCacheable::StdinInput);
        }
        self.inputs.push((PathBuf::from(arg), lang));
        self.key_args.extend(raw.iter().cloned());
        self.preprocessor_args.extend(raw);
        Ok(())
    }

    fn apply(
        &mut self,
        kind: Kind,
        value: Option<OsString>,
        raw: Vec<OsString>,
        cwd: &Path,
    ) -> Result<(), NotCacheable> {
        let value_path = || PathBuf::from(value.clone().unwrap_or_default());
        let mut hashed = true;
        let mut to_preprocessor = true;
        match kind {
            CompileOnly => {
                self.compile = true;
                to_preprocessor = false;
            }
            Output => {
                let v = value.clone().unwrap_or_default();
                if v.as_bytes().starts_with(b":") {
                    return Err(NotCacheable::TooHard("/Fo: (colon form)"));
                }
                self.output = Some(v);
                hashed = false;
                to_preprocessor = false;
            }
            Preprocess => return Err(NotCacheable::PreprocessOnly),
            SourceAs(lang) => {
                let v = value.clone().unwrap_or_default();
                return self.add_input(&v, Some(lang), raw);
            }
            AllAs(lang) => self.all_as = Some(lang),
            IncludeDir => self.include_dirs.push(("/I", value_path())),
            NoStdInc | Plain => {}
            ForcedInclude => self.include_files.push(value_path()),
            FullPaths => self.full_paths = true,
            ShowIncludes => {
                if self.dep_style == DepStyle::None {
                    self.dep_style = DepStyle::UserFull;
                }
                to_preprocessor = false;
            }
            ShowIncludesUser => {
                self.dep_style = DepStyle::UserWithoutSystem;
                to_preprocessor = false;
            }
            DebugInObject => self.debug = true,
            DebugPdb => {
                if !self.clang {
                    return Err(NotCacheable::TooHard("/Zi, /ZI (a PDB shared between compiles)"));
                }
                // clang-cl: /Zi is /Z7; /ZI is ignored.
                if raw[0].as_bytes().ends_with(b"Zi") {
                    self.debug = true;
                }
            }
            PchCreate => return Err(NotCacheable::PrecompiledHeader),
            PchUse => {
                self.pch_use = value;
                to_preprocessor = false;
            }
            PchFile => {
                let v = value.clone().unwrap_or_default();
                if v.as_bytes().starts_with(b":") {
                    return Err(NotCacheable::TooHard("/Fp: (colon form)"));
                }
                self.pch_file = Some(v);
                to_preprocessor = false;
            }
            Link => unreachable!("handled by the caller"),
            SourceDependencies => {
                let v = value.clone().unwrap_or_default();
                if v.as_bytes() == b"-" {
                    return Err(NotCacheable::OutputToStdout);
                }
                self.source_deps = Some(v);
                self.key_args.push(OsString::from("/sourceDependencies"));
                hashed = false;
                to_preprocessor = false;
            }
            InputFile => {
                let p = value_path();
                if !cwd.join(&p).is_file() {
                    return Err(NotCacheable::MissingInput);
                }
                self.extra_inputs.push(p);
            }
            Xclang => {
                // cc1 options that write files or name other outputs.
                let v = value.clone().unwrap_or_default();
                let b = v.as_bytes();
                if [
                    &b"-dependency-file"[..],
                    b"-MT",
                    b"-o",
                    b"-emit",
                    b"-include-pch",
                    b"-load",
                    b"-plugin",
                ]
                .iter()
                .any(|p| b.starts_with(p))
                {
                    return Err(NotCacheable::TooHard("-Xclang option naming files"));
                }
            }
            Color(c) => {
                if self.clang {
                    self.color = c;
                }
                hashed = false;
                to_preprocessor = false;
            }
            Informational => return Err(NotCacheable::Informational),
            ExtraOutputs(o) => return Err(NotCacheable::ExtraOutputs(o)),
            TooHard(r) => return Err(NotCacheable::TooHard(r)),
        }
        if hashed {
            self.key_args.extend(raw.iter().cloned());
        }
        if to_preprocessor {
            self.preprocessor_args.extend(raw);
        }
        Ok(())
    }

    fn finish(mut self, cwd: &Path) -> Result<CCompile, NotCacheable> {
        if !self.compile {
            return Err(NotCacheable::Linking);
        }
        let mut sources = Vec::new();
        let mut non_source = false;
        for (path, forced) in &self.inputs {
            match forced.or_else(|| language_of(path, self.all_as)) {
                Some(lang) => sources.push((path.clone(), lang)),
                Option::None => non_source = true,
            }
        }
        if non_source {
            return Err(NotCacheable::NonSourceInput);
        }
        if sources.len() > 1 {
            return Err(NotCacheable::MultipleSources);
        }
        let Some((source, language)) = sources.pop() else {
            return Err(NotCacheable::NoSource);
        };
        if !cwd.join(&source).is_file() {
            return Err(NotCacheable::MissingInput);
        }
        let stem = source.file_stem().unwrap_or_default().to_os_string();
        let object = object_path(self.output.as_deref(), &stem, cwd, self.clang)?;
        let mut outputs = vec![Output {
            role: "object",
            path: object.clone(),
            optional: false,
        }];
        if let Some(sd) = &self.source_deps {
            // `/sourceDependencies dir/` writes `dir/<source file name>.json`. Only cl.exe (and
            // newer clang-cl) write it: absent after a compile, it is absent after a hit too.
            let path = if sd.as_bytes().ends_with(b"/") || cwd.join(sd).is_dir() {
                let mut name = source.file_name().unwrap_or_default().to_os_string();
                name.push(".json");
                Path::new(sd).join(name)
            } else {
                PathBuf::from(sd)
            };
            outputs.push(Output {
                role: "source-dependencies",
                path,
                optional: true,
            });
        }
        if let Some(pch) = self.pch_path()? {
            if !cwd.join(&pch).is_file() {
                return Err(NotCacheable::MissingInput);
            }
            self.key_args.push(OsString::from(PCH_MARKER));
            self.key_args.push(pch.into_os_string());
        }
        // CodeView (/Z7) records the working directory and the object's absolute path;
        // /FC diagnostics and /sourceDependencies name files by absolute path.
        let hash_cwd = (self.debug || self.full_paths || self.source_deps.is_some()).then(|| cwd.to_path_buf());
        let output_path_in_key = self.debug.then(|| cwd.join(&object));
        Ok(CCompile {
            source,
            language: language.to_string(),
            outputs,
            key_args: self.key_args,
            preprocessor_args: self.preprocessor_args,
            extra_inputs: self.extra_inputs,
            include_files: self.include_files,
            include_dirs: self.include_dirs,
            hash_cwd,
            path_maps: Vec::new(),
            output_path_in_key,
            color: self.color,
            dep_style: self.dep_style,
            dep_args: Vec::new(),
        })
    }

    /// The precompiled header a `/Yu` compile reads: `/Fp`, else the `/Yu` header's name with
    /// `.pch`. `None` without `/Yu` (a lone `/Fp` names nothing read).
    fn pch_path(&self) -> Result<Option<PathBuf>, NotCacheable> {
        let Some(header) = &self.pch_use else {
            return Ok(Option::None);
        };
        if let Some(fp) = &self.pch_file {
            if fp.as_bytes().ends_with(b"/") || fp.as_bytes().ends_with(b"\\") {
                return Err(NotCacheable::TooHard("/Fp naming a directory"));
            }
            return Ok(Some(PathBuf::from(fp)));
        }
        if header.is_empty() {
            return Err(NotCacheable::TooHard("/Yu without /Fp or a header name"));
        }
        let name = Path::new(header).file_name().unwrap_or_default();
        Ok(Some(Path::new(name).with_extension("pch")))
    }
}

/// Where the object goes: `/Fo` names it (`.obj` added when it has no extension) or a directory
/// for it (ending in `/`), else `<source stem>.obj` in the working directory.
fn object_path(fo: Option<&OsStr>, stem: &OsStr, cwd: &Path, clang: bool) -> Result<PathBuf, NotCacheable> {
    let mut default = stem.to_os_string();
    default.push(".obj");
    let Some(fo) = fo.filter(|v| !v.is_empty()) else {
        return Ok(PathBuf::from(default));
    };
    let b = fo.as_bytes();
    if b.ends_with(b"/") {
        return Ok(Path::new(fo).join(default));
    }
    if b.ends_with(b"\\") {
        // A directory on Windows; a file name with a backslash here: not worth guessing.
        return Err(NotCacheable::TooHard("/Fo ending in a backslash"));
    }
    if !clang && cwd.join(fo).is_dir() {
        return Err(NotCacheable::TooHard("/Fo naming a directory without a trailing slash"));
    }
    let path = PathBuf::from(fo);
    if path.extension().is_none() {
        let mut with = fo.to_os_string();
        with.push(".obj");
        return Ok(PathBuf::from(with));
    }
    Ok(path)
}

/// The language of a source: `/TC`/`/TP` for every input, else by extension. `None`: not a
/// source (an object, a library, a resource: inputs of a link).
fn language_of(path: &Path, all_as: Option<&'static str>) -> Option<&'static str> {
    let ext = path
        .extension()
        .and_then(OsStr::to_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    if matches!(ext.as_str(), "obj" | "o" | "lib" | "a" | "res" | "exp" | "def" | "pdb") {
        return Option::None;
    }
    if let Some(l) = all_as {
        return Some(l);
    }
    match ext.as_str() {
        "c" => Some("c"),
        "cpp" | "cxx" | "cc" | "cp" | "c++" => Some("c++"),
        _ => Option::None,
    }
}

#[cfg(test)]
mod tests;
