//! `__has_include` in C preprocessor text: which headers a file probes for, and where each would
//! be found, so that direct mode can record a probing call's include set (the probed headers that
//! exist, and the places where they must stay absent). `#include_next` is followed the same way:
//! where it finds its header depends on the directory the including file was found in, so every
//! directory of the chain is recorded, as for `__has_include_next`. Not a preprocessor: nothing is expanded and
//! no `#if` is evaluated, so every probe in the text counts, taken or not. A probe whose header
//! name is not certain where the compiler reads it is `Unknown`: the call keys the preprocessed
//! text instead (compile.rs).
//!
//! What makes a name certain (checked with gcc 12 and clang 14): `__has_include(<a.h>)` and
//! `__has_include("a.h")` in an `#if`/`#elif`, or through an object-like alias
//! (`#define HAS __has_include`, xxhash.h's `XXH_HAS_INCLUDE`), lex the name as a header name:
//! nothing in it is expanded. Inside another macro's arguments, in a `#define` body or through a
//! function-like alias (`#define HAS(x) __has_include(x)`), `<a.h>` is a sequence of tokens that
//! is macro-expanded first (`a` defined as `b` probes `b.h`): only a string literal is certain.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::c_lexer::{Kind, Tok, directive, for_each_line, has_trigraph, splice};

/// A header a text probes for, as the compiler names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderProbe {
    pub name: PathBuf,
    /// `"name"`: searched in the includer's directory before the include path.
    pub quoted: bool,
}

/// What a macro name does when used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// `__has_include` itself, or an object-like alias of it: `NAME(<h>)` and `NAME("h")` probe
    /// `h`, the name lexed as a header name.
    Operator,
    /// `#define NAME(…, x, …) __has_include(x)`: the argument at `param` names the header, after
    /// macro expansion (only a string literal is certain).
    Function { param: usize },
    /// Any other macro whose body uses one of these: what it probes is not known here.
    Opaque,
}

/// The names that stand for `__has_include` in a call's files: the operators and the macros
/// defined from them, in any file the call read (an alias is often defined in one header and
/// used in another).
#[derive(Debug, Clone)]
pub struct Aliases {
    names: HashMap<Vec<u8>, Vec<Meaning>>,
    /// A file that names one also holds a trigraph (`??=define` is a `#define` under
    /// `-trigraphs`, which this lexer does not read): the aliases may be incomplete.
    trigraphs: bool,
}

/// The spellings of the operators (gcc before 10 spelled them with trailing underscores).
const OPERATORS: &[&[u8]] = &[
    b"__has_include",
    b"__has_include_next",
    b"__has_include__",
    b"__has_include_next__",
];

impl Aliases {
    /// Learn the aliases defined in `texts`, transitively (`#define B A` after `#define A
    /// __has_include`), whatever their order.
    pub fn learn(texts: &[&[u8]]) -> Aliases {
        let mut a = Aliases {
            names: OPERATORS
                .iter()
                .map(|n| (n.to_vec(), vec![Meaning::Operator]))
                .collect(),
            trigraphs: false,
        };
        // Each text is lexed at most once: its `#define`s that name anything known so far.
        let mut defines: Vec<Option<Vec<Define>>> = vec![None; texts.len()];
        loop {
            let mut learned = false;
            for (i, text) in texts.iter().enumerate() {
                if defines[i].is_none() {
                    if !a.mentioned_in(text) {
                        continue;
                    }
                    defines[i] = Some(define_lines(text));
                    a.trigraphs |= has_trigraph(text);
                }
                for d in defines[i].as_deref().unwrap_or_default() {
                    if let Some(m) = a.meaning_of(d)
                        && a.add(&d.name, m)
                    {
                        learned = true;
                    }
                }
            }
            if !learned {
                return a;
            }
        }
    }

    /// Does `text` contain one of the names (anywhere: a cheap test before lexing)?
    pub fn mentioned_in(&self, text: &[u8]) -> bool {
        // Every operator spelling contains `__has_include`.
        memchr::memmem::find(text, b"__has_include").is_some()
            || self
                .names
                .keys()
                .any(|n| !n.starts_with(b"__has_include") && memchr::memmem::find(text, n).is_some())
    }

    fn add(&mut self, name: &[u8], m: Meaning) -> bool {
        let ms = self.names.entry(name.to_vec()).or_default();
        if ms.contains(&m) {
            return false;
        }
        ms.push(m);
        true
    }

    fn get(&self, name: &[u8]) -> Option<&[Meaning]> {
        self.names.get(name).map(Vec::as_slice)
    }

    fn is_operator(&self, name: &[u8]) -> bool {
        self.get(name)
            .is_some_and(|ms| ms.iter().all(|m| *m == Meaning::Operator))
    }

    /// What defining `d` makes its name, when its body uses a known name.
    fn meaning_of(&self, d: &Define) -> Option<Meaning> {
        if !d
            .body
            .iter()
            .any(|t| matches!(t, DTok::Ident(n) if self.get(n).is_some()))
        {
            return None;
        }
        let m = match (&d.params, d.body.as_slice()) {
            (None, [DTok::Ident(x)]) if self.is_operator(x) => Meaning::Operator,
            (Some(params), [DTok::Ident(x), DTok::Punct(b'('), DTok::Ident(p), DTok::Punct(b')')])
                if self.is_operator(x) && params.contains(p) =>
            {
                Meaning::Function {
                    param: params.iter().position(|q| q == p).unwrap_or_default(),
                }
            }
            _ => Meaning::Opaque,
        };
        Some(m)
    }
}

/// The headers `text` probes for, or why they cannot be known (a sentence for the log).
pub fn probes(text: &[u8], aliases: &Aliases) -> Result<Vec<HeaderProbe>, &'static str> {
    let include_next = memchr::memmem::find(text, b"include_next").is_some();
    if !include_next && !aliases.mentioned_in(text) {
        return Ok(Vec::new());
    }
    if has_trigraph(text) {
        // Under -trigraphs `??/` splices lines and `??=` starts a directive: not lexed here.
        return Err("a trigraph in a file that probes for headers");
    }
    let buf = splice(text);
    let mut found = Vec::new();
    let mut failed = None;
    for_each_line(&buf, |line| {
        if failed.is_none()
            && let Err(why) = line_probes(&buf, line, aliases, &mut found)
        {
            failed = Some(why);
        }
    });
    match failed {
        Some(why) => Err(why),
        None => Ok(found),
    }
}

fn line_probes(b: &[u8], line: &[Tok], aliases: &Aliases, out: &mut Vec<HeaderProbe>) -> Result<(), &'static str> {
    let text = |t: &Tok| &b[t.start..t.end];
    let names = |line: &[Tok]| {
        line.iter()
            .any(|t| t.kind == Kind::Ident && aliases.get(text(t)).is_some())
    };
    let (line, directive) = match directive(b, line) {
        Some(d) if d.get(1).is_some_and(|n| n.kind == Kind::Ident) => (d, Some(text(&d[1]))),
        _ => (line, None),
    };
    match directive {
        // Where it finds the header depends on the directory the file was found in: recorded like
        // `__has_include_next`, in every directory of the chain.
        Some(b"include_next") => {
            let (probe, _) = header_name(b, line, 2).ok_or("an #include_next whose header name is not literal")?;
            out.push(probe);
            return Ok(());
        }
        // A name being defined, tested or removed is not a probe; a `#define` body is judged where
        // the macro is used (`Aliases`); diagnostics are not expanded.
        Some(b"define" | b"undef" | b"ifdef" | b"ifndef" | b"elifdef" | b"elifndef" | b"error" | b"warning") => {
            return Ok(());
        }
        Some(b"if" | b"elif") => {}
        _ if names(line) => return Err("__has_include outside an #if"),
        _ => return Ok(()),
    }
    // For each open parenthesis: does it follow a name (a macro's arguments, which are expanded)?
    let mut calls: Vec<bool> = Vec::new();
    let mut i = 2;
    while i < line.len() {
        let t = &line[i];
        if t.is_punct(b, b'(') {
            calls.push(i > 2 && line[i - 1].kind == Kind::Ident && text(&line[i - 1]) != b"defined");
            i += 1;
            continue;
        }
        if t.is_punct(b, b')') {
            calls.pop();
            i += 1;
            continue;
        }
        let Some(meanings) = (t.kind == Kind::Ident).then(|| aliases.get(text(t))).flatten() else {
            i += 1;
            continue;
        };
        let after_defined = text(&line[i - 1]) == b"defined"
            || (line[i - 1].is_punct(b, b'(') && i >= 3 && text(&line[i - 2]) == b"defined");
        if after_defined {
            i += 1;
            continue;
        }
        let in_arguments = calls.iter().any(|c| *c);
        let mut next = i + 1;
        for m in meanings {
            let end = match m {
                Meaning::Operator => operator_probe(b, line, i + 1, in_arguments, out)?,
                Meaning::Function { param } => function_probe(b, line, i + 1, *param, out)?,
                Meaning::Opaque => return Err("a macro that probes for headers in a way not understood"),
            };
            next = next.max(end);
        }
        i = next;
    }
    Ok(())
}

/// `( <name> )` or `( "name" )` at `at`: the probe, and the index after the `)`.
fn operator_probe(
    b: &[u8],
    line: &[Tok],
    at: usize,
    in_arguments: bool,
    out: &mut Vec<HeaderProbe>,
) -> Result<usize, &'static str> {
    const NOT_LITERAL: &str = "a __has_include whose header name is not literal";
    if !line.get(at).is_some_and(|t| t.is_punct(b, b'(')) {
        return Err(NOT_LITERAL);
    }
    let Some(operand) = line.get(at + 1) else {
        return Err(NOT_LITERAL);
    };
    if operand.is_punct(b, b'<') && in_arguments {
        return Err("a __has_include(<…>) inside a macro's arguments (its name is expanded)");
    }
    let (probe, close) = header_name(b, line, at + 1).ok_or(NOT_LITERAL)?;
    out.push(probe);
    if !line.get(close).is_some_and(|t| t.is_punct(b, b')')) {
        return Err(NOT_LITERAL);
    }
    Ok(close + 1)
}

/// The header name at token `at` lexed as the compiler lexes it after `#include` or
/// `__has_include(`: `"name"`, or `<name>` (the bytes up to `>`, as they stand); with the index
/// of the token after it. `None` for anything else.
fn header_name(b: &[u8], line: &[Tok], at: usize) -> Option<(HeaderProbe, usize)> {
    let operand = line.get(at)?;
    if operand.kind == Kind::Str {
        return Some((quoted_name(&b[operand.start..operand.end])?, at + 1));
    }
    if !operand.is_punct(b, b'<') {
        return None;
    }
    let from = operand.start + 1;
    let len = memchr::memchr(b'>', &b[from..])?;
    let name = &b[from..from + len];
    let plain = |c: &u8| !c.is_ascii_whitespace() && !matches!(c, b'"' | b'\'' | b'\\');
    if name.is_empty() || !name.iter().all(plain) || name.windows(2).any(|w| w == b"//" || w == b"/*") {
        return None;
    }
    // The tokens lexed inside must end exactly at the `>`.
    let gt = from + len;
    let k = line.iter().position(|t| t.start == gt && t.is_punct(b, b'>'))?;
    let probe = HeaderProbe {
        name: PathBuf::from(OsString::from_vec(name.to_vec())),
        quoted: false,
    };
    Some((probe, k + 1))
}

/// A function-like alias used at `at`: its argument `param` must be a string literal. Not followed
/// by `(`, the name is not a macro call and probes nothing.
fn function_probe(
    b: &[u8],
    line: &[Tok],
    at: usize,
    param: usize,
    out: &mut Vec<HeaderProbe>,
) -> Result<usize, &'static str> {
    const NOT_LITERAL: &str = "a probe through a function-like macro whose argument is not a string literal";
    if !line.get(at).is_some_and(|t| t.is_punct(b, b'(')) {
        return Ok(at);
    }
    let mut args: Vec<Vec<&Tok>> = vec![Vec::new()];
    let mut depth = 1;
    let mut i = at + 1;
    loop {
        let Some(t) = line.get(i) else {
            return Err(NOT_LITERAL);
        };
        if t.is_punct(b, b'(') {
            depth += 1;
        } else if t.is_punct(b, b')') {
            depth -= 1;
            if depth == 0 {
                break;
            }
        } else if depth == 1 && t.is_punct(b, b',') {
            args.push(Vec::new());
            i += 1;
            continue;
        }
        args.last_mut().unwrap().push(t);
        i += 1;
    }
    match args.get(param).map(Vec::as_slice) {
        Some([t]) if t.kind == Kind::Str => out.push(quoted_name(&b[t.start..t.end]).ok_or(NOT_LITERAL)?),
        _ => return Err(NOT_LITERAL),
    }
    Ok(i + 1)
}

/// `"name"` (no prefix, no escapes) as a probe.
fn quoted_name(lit: &[u8]) -> Option<HeaderProbe> {
    let name = lit.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if name.is_empty() || name.contains(&b'\\') || name.contains(&b'"') {
        return None;
    }
    Some(HeaderProbe {
        name: PathBuf::from(OsString::from_vec(name.to_vec())),
        quoted: true,
    })
}

/// A `#define` whose body is kept for `Aliases`.
#[derive(Debug, Clone)]
struct Define {
    name: Vec<u8>,
    /// `Some` for a function-like macro.
    params: Option<Vec<Vec<u8>>>,
    body: Vec<DTok>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DTok {
    Ident(Vec<u8>),
    Punct(u8),
    Other,
}

fn define_lines(text: &[u8]) -> Vec<Define> {
    let buf = splice(text);
    let b = &buf[..];
    let mut out = Vec::new();
    for_each_line(b, |line| {
        let Some([_, d, name, rest @ ..]) = directive(b, line) else {
            return;
        };
        if &b[d.start..d.end] != b"define" || name.kind != Kind::Ident {
            return;
        }
        let mut params = None;
        let mut body = rest;
        // Function-like only with `(` right after the name.
        if let Some(open) = rest.first()
            && open.is_punct(b, b'(')
            && open.start == name.end
        {
            let mut ps = Vec::new();
            let mut i = 1;
            while let Some(t) = rest.get(i) {
                i += 1;
                if t.is_punct(b, b')') {
                    break;
                }
                if t.kind == Kind::Ident {
                    ps.push(b[t.start..t.end].to_vec());
                } else if !t.is_punct(b, b',') {
                    // `...`: the variadic arguments, one more parameter.
                    ps.push(b"__VA_ARGS__".to_vec());
                }
            }
            ps.dedup();
            params = Some(ps);
            body = &rest[i.min(rest.len())..];
        }
        out.push(Define {
            name: b[name.start..name.end].to_vec(),
            params,
            body: body
                .iter()
                .map(|t| match t.kind {
                    Kind::Ident => DTok::Ident(b[t.start..t.end].to_vec()),
                    Kind::Punct => DTok::Punct(b[t.start]),
                    _ => DTok::Other,
                })
                .collect(),
        });
    });
    out
}

/// Does `text` name the operator at all (a cheap test)?
pub fn mentions_has_include(text: &[u8]) -> bool {
    memchr::memmem::find(text, b"__has_include").is_some()
}

/// A file a compile read.
pub struct ReadFile<'a> {
    pub path: &'a Path,
    pub text: &'a [u8],
    /// A file of the build's own: its probes are followed. The compiler's own headers are
    /// trusted to probe only its own directories (but may define aliases that ours use).
    pub ours: bool,
}

/// Where a compile looks for headers.
pub struct Where<'a> {
    /// The include search chain, the compiler's own directories included (the includers' own
    /// directories apart).
    pub chain: &'a [PathBuf],
    pub cwd: &'a Path,
    /// When the call started: a directory changed after it may have held a probed header.
    pub start: SystemTime,
    /// The directories the call wrote its outputs to (changed by the compile itself).
    pub output_dirs: &'a [&'a Path],
}

/// Why the probes of a compile cannot be recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum NotFollowed {
    /// A probe, or where it looks, is not understood (a sentence for the log).
    Unknown(String),
    /// The directory that would hold an absent candidate changed while the call ran (the
    /// candidate may have been there for the compiler): this call records nothing.
    Changed(PathBuf),
}

/// The probes of the build's own files among `read` (the source first), followed to where each
/// probed header is now or must stay absent. `args` are the call's arguments: a macro defined
/// there (`-DHAS=__has_include`) is in no file.
pub fn follow(read: &[ReadFile], args: &[OsString], at: &Where) -> Result<Resolved, NotFollowed> {
    let texts: Vec<&[u8]> = read.iter().map(|f| f.text).collect();
    let aliases = Aliases::learn(&texts);
    let probing = |f: &&ReadFile| {
        f.ours && (aliases.mentioned_in(f.text) || memchr::memmem::find(f.text, b"include_next").is_some())
    };
    if !read.iter().any(|f| probing(&f)) {
        return Ok(Resolved::default());
    }
    if aliases.trigraphs {
        return Err(NotFollowed::Unknown(
            "a trigraph in a file that may define a probing macro".to_string(),
        ));
    }
    if args.iter().any(|a| aliases.mentioned_in(a.as_encoded_bytes())) {
        return Err(NotFollowed::Unknown("an argument names __has_include".to_string()));
    }
    let mut found: Vec<HeaderProbe> = Vec::new();
    for f in read.iter().filter(probing) {
        for p in probes(f.text, &aliases).map_err(|why| NotFollowed::Unknown(format!("{}: {why}", f.path.display())))? {
            if !found.contains(&p) {
                found.push(p);
            }
        }
    }
    let mut includer_dirs: Vec<PathBuf> = Vec::new();
    for f in read {
        let dir = f.path.parent().unwrap_or(Path::new("")).to_path_buf();
        if !includer_dirs.contains(&dir) {
            includer_dirs.push(dir);
        }
    }
    resolve(&found, &includer_dirs, at)
}

// ---- Where the probed headers are ----

/// Where the probes of a call's files were looked for: candidates that exist now (regular files:
/// recorded with their content, like headers) and candidates that must stay absent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub found: Vec<PathBuf>,
    pub absent: Vec<PathBuf>,
}

/// Look each probe up in every directory the compiler could search for it: for a quoted name
/// the includers' directories, then the whole search chain; an absolute name as itself. Every
/// directory, not only up to the first hit, so that `__has_include_next` from any point of the
/// chain finds what it found. An absent candidate whose nearest existing directory changed after
/// the call started is refused unless that directory is one the call wrote its outputs to (the
/// compile itself changed it).
fn resolve(probes: &[HeaderProbe], includer_dirs: &[PathBuf], at: &Where) -> Result<Resolved, NotFollowed> {
    let mut r = Resolved::default();
    let mut seen = std::collections::HashSet::new();
    let mut changed: HashMap<PathBuf, bool> = HashMap::new();
    for p in probes {
        let dirs: Vec<&PathBuf> = if p.name.is_absolute() {
            Vec::new()
        } else if p.quoted {
            includer_dirs.iter().chain(at.chain).collect()
        } else {
            at.chain.iter().collect()
        };
        let candidates: Vec<PathBuf> = if p.name.is_absolute() {
            vec![p.name.clone()]
        } else {
            dirs.iter().map(|d| d.join(&p.name)).collect()
        };
        for c in candidates {
            if !seen.insert(c.clone()) {
                continue;
            }
            let path = at.cwd.join(&c);
            let not_a_file = || NotFollowed::Unknown(format!("the probed header {} is not a file", c.display()));
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => r.found.push(c),
                Ok(_) => return Err(not_a_file()),
                // A dangling link: not found now, but a lookup of the name finds an entry.
                Err(_) if path.symlink_metadata().is_ok() => return Err(not_a_file()),
                Err(_) => {
                    let dir = nearest_existing_dir(&path);
                    let recent = *changed.entry(dir.clone()).or_insert_with(|| {
                        std::fs::metadata(&dir).is_ok_and(|m| crate::manifest::modified_or_changed_after(&m, at.start))
                            && !at.output_dirs.iter().any(|o| at.cwd.join(o) == dir)
                    });
                    if recent {
                        return Err(NotFollowed::Changed(c));
                    }
                    r.absent.push(c);
                }
            }
        }
    }
    Ok(r)
}

fn nearest_existing_dir(p: &Path) -> PathBuf {
    let mut at = p.parent();
    while let Some(d) = at {
        if d.is_dir() {
            return d.to_path_buf();
        }
        at = d.parent();
    }
    PathBuf::from("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes_of(files: &[&str]) -> Result<Vec<(String, bool)>, &'static str> {
        let texts: Vec<&[u8]> = files.iter().map(|f| f.as_bytes()).collect();
        let aliases = Aliases::learn(&texts);
        let mut all = Vec::new();
        for t in &texts {
            for p in probes(t, &aliases)? {
                all.push((p.name.display().to_string(), p.quoted));
            }
        }
        Ok(all)
    }

    fn one(text: &str) -> Result<Vec<(String, bool)>, &'static str> {
        probes_of(&[text])
    }

    fn angle(n: &str) -> (String, bool) {
        (n.to_string(), false)
    }

    fn quoted(n: &str) -> (String, bool) {
        (n.to_string(), true)
    }

    #[test]
    fn literal_probes() {
        assert_eq!(one("#if __has_include(<a/b.h>)\n#endif\n"), Ok(vec![angle("a/b.h")]));
        assert_eq!(
            one("# elif __has_include ( \"opt.h\" ) && X\n"),
            Ok(vec![quoted("opt.h")])
        );
        assert_eq!(
            one("#if __has_include_next(<n.h>) || __has_include(<m.h>)\n"),
            Ok(vec![angle("n.h"), angle("m.h")])
        );
        assert_eq!(one("#if (__has_include(<p.h>))\n"), Ok(vec![angle("p.h")]));
        // Spliced over lines, as zstd's `#if defined(__ELF__) \` … `&& defined(__has_include)`.
        assert_eq!(
            one("#if defined(__ELF__) \\\n    && defined(__has_include) && \\\n __has_include(<cet.h>)\n"),
            Ok(vec![angle("cet.h")])
        );
        assert_eq!(one("#include <stdio.h>\nint main(void) { return 0; }\n"), Ok(vec![]));
    }

    #[test]
    fn include_next_is_a_probe_of_its_header() {
        assert_eq!(one("#include_next <limits.h>\n"), Ok(vec![angle("limits.h")]));
        assert_eq!(one("%:include_next <limits.h>\n"), Ok(vec![angle("limits.h")]));
        assert_eq!(one("# include_next \"cfg.h\" // next\n"), Ok(vec![quoted("cfg.h")]));
    }

    #[test]
    fn defined_and_tests_of_the_operator_probe_nothing() {
        for t in [
            "#ifdef __has_include\n#endif\n",
            "#ifndef __has_include\n#define __has_include(x) 0\n#endif\n",
            "#if defined(__has_include) && defined __has_include_next\n#endif\n",
            "#if defined ( __has_include )\n#endif\n",
            "#undef __has_include\n",
            "#error no __has_include here\n",
        ] {
            assert_eq!(one(t), Ok(vec![]), "{t}");
        }
    }

    #[test]
    fn comments_and_strings_are_not_probes() {
        assert_eq!(one("/* __has_include(MACRO) */\n// __has_include(x)\n"), Ok(vec![]));
        assert_eq!(one("const char *s = \"__has_include(x)\";\n"), Ok(vec![]));
        // A comment inside the directive, over lines: still one directive.
        assert_eq!(
            one("#if X /* a\n comment */ && __has_include(<c.h>)\n"),
            Ok(vec![angle("c.h")])
        );
        // `"/*"` opens no comment: the probe after it still counts.
        assert_eq!(
            one("const char *s = \"/*\";\n#if __has_include(<d.h>)\n#endif\n// */\n"),
            Ok(vec![angle("d.h")])
        );
        assert_eq!(
            one("int x = 1'000'000;\n#if __has_include(<e.h>)\n"),
            Ok(vec![angle("e.h")])
        );
    }

    #[test]
    fn non_literal_probes_are_unknown() {
        for t in [
            "#if __has_include(MY_HDR)\n",
            "#if __has_include(< spaced.h >)\n",
            "#if __has_include(\"esc\\aped.h\")\n",
            "#if __has_include\n",
            "#if ID(__has_include(<a.h>))\n",
            "#define HX __has_include(<x.h>)\n#if HX\n#endif\n",
            "#define HQ __has_include(\"x.h\")\n#if HQ\n#endif\n",
            "#include_next MACRO\n",
            "int x = __has_include(<a.h>);\n",
            "#if __has_include(<a.h>) // ??/\n",
            "??=if __has_include(<a.h>)\n",
            "%:include_next MACRO\n",
        ] {
            assert!(one(t).is_err(), "{t}: {:?}", one(t));
        }
        // A string literal stays literal inside another macro's arguments.
        assert_eq!(one("#if ID(__has_include(\"q.h\"))\n"), Ok(vec![quoted("q.h")]));
    }

    #[test]
    fn object_like_aliases_as_xxhash_defines_them() {
        let xxhash = "#ifndef XXH_HAS_INCLUDE\n#  ifdef __has_include\n/*\n * Not defined as XXH_HAS_INCLUDE(x) (function-like) because\n */\n\
                      #    define XXH_HAS_INCLUDE __has_include\n#  else\n#    define XXH_HAS_INCLUDE(x) 0\n#  endif\n#endif\n\
                      #if defined(__wasm_simd128__) && XXH_HAS_INCLUDE(<arm_neon.h>) /* WASM SIMD128 via SIMDe */\n#endif\n";
        assert_eq!(one(xxhash), Ok(vec![angle("arm_neon.h")]));
        // Under -trigraphs `??=define` is a definition this lexer does not read.
        assert!(Aliases::learn(&[b"??=define H __has_include\n"]).trigraphs);
        assert!(!Aliases::learn(&[b"#define H __has_include\n"]).trigraphs);
        // A digraph `%:define` defines one too.
        assert_eq!(
            probes_of(&["#if H(<v.h>)\n#endif\n", "%:define H __has_include\n"]),
            Ok(vec![angle("v.h")])
        );
        // Defined in one file, used in another, through a second alias.
        assert_eq!(
            probes_of(&["#if B(<u.h>)\n#endif\n", "#define B A\n", "#define A __has_include\n"]),
            Ok(vec![angle("u.h")])
        );
        assert!(probes_of(&["#if A(X)\n#endif\n", "#define A __has_include\n"]).is_err());
    }

    #[test]
    fn function_like_aliases_take_string_literals_only() {
        let def = "#define HAS(x) __has_include(x)\n";
        assert_eq!(probes_of(&["#if HAS(\"p.h\")\n#endif\n", def]), Ok(vec![quoted("p.h")]));
        // `<p.h>` through a macro argument is expanded before the probe: not certain.
        assert!(probes_of(&["#if HAS(<p.h>)\n#endif\n", def]).is_err());
        assert!(probes_of(&["#if HAS(NAME)\n#endif\n", def]).is_err());
        // Not called: not a probe.
        assert_eq!(
            probes_of(&["#ifdef HAS\n#endif\n#if defined(HAS)\n#endif\n", def]),
            Ok(vec![])
        );
        // The parameter that names the header.
        assert_eq!(
            probes_of(&[
                "#if H2(1, \"k.h\")\n#endif\n",
                "#define H2(a, b) __has_include_next(b)\n"
            ]),
            Ok(vec![quoted("k.h")])
        );
        // Another shape of macro around the operator: unknown when used.
        assert!(probes_of(&["#if H3(\"k.h\")\n#endif\n", "#define H3(x) (__has_include(x) && 1)\n"]).is_err());
    }

    #[test]
    fn raw_strings_are_strings() {
        assert_eq!(one("auto s = R\"x(__has_include(M))x\";\n"), Ok(vec![]));
    }

    #[test]
    fn resolve_records_every_directory() {
        let d = std::env::temp_dir().join(format!("cachepot-probes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for sub in ["src", "a", "b", "c/p.h"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("b/p.h"), "").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        let probe = |name: &str, quoted| HeaderProbe {
            name: name.into(),
            quoted,
        };
        let src = [PathBuf::from("src")];
        let ab = [PathBuf::from("a"), PathBuf::from("b")];
        let at = |chain, start, output_dirs| Where {
            chain,
            cwd: &d,
            start,
            output_dirs,
        };
        let r = resolve(&[probe("p.h", true)], &src, &at(&ab, later, &[])).unwrap();
        assert_eq!(r.found, [PathBuf::from("b/p.h")]);
        assert_eq!(r.absent, [PathBuf::from("src/p.h"), PathBuf::from("a/p.h")]);
        let r = resolve(&[probe("p.h", false)], &src, &at(&ab, later, &[])).unwrap();
        assert_eq!(r.absent, [PathBuf::from("a/p.h")]);
        // A directory where a header could be: unknown.
        let c = [PathBuf::from("c")];
        assert!(matches!(
            resolve(&[probe("p.h", false)], &[], &at(&c, later, &[])),
            Err(NotFollowed::Unknown(_))
        ));
        // A directory changed after the call started: the candidate may have been there.
        let a = [PathBuf::from("a")];
        let before = SystemTime::now() - std::time::Duration::from_secs(10);
        assert!(matches!(
            resolve(&[probe("p.h", false)], &[], &at(&a, before, &[])),
            Err(NotFollowed::Changed(_))
        ));
        // … unless the call wrote its outputs there.
        assert!(resolve(&[probe("p.h", false)], &[], &at(&a, before, &[Path::new("a")])).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
