//! Shared argument machinery: @response-file expansion and flag tables. A table entry says how a
//! flag takes its value and what kind it is; each compiler family defines its own kinds and table.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// How a flag carries its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueStyle {
    /// `-c`: no value; matches only exactly.
    None,
    /// `-o FILE`: the value is the next argument.
    Separate,
    /// `-DX`, `-std=c11`, `-fprofile-use=x`: the value is the rest of this argument (maybe empty).
    Joined,
    /// `-I dir` or `-Idir`.
    JoinedOrSeparate,
}

/// One row of a flag table.
#[derive(Debug, Clone, Copy)]
pub struct Flag<K: Copy> {
    pub name: &'static str,
    pub style: ValueStyle,
    pub kind: K,
}

/// A parsed flag: which row matched, and its value if it takes one.
#[derive(Debug, Clone)]
pub struct Matched<K: Copy> {
    pub kind: K,
    pub value: Option<OsString>,
    /// The arguments this flag occupied (one, or two for a separate value).
    pub raw: Vec<OsString>,
}

/// Match `args[i]` against `table`: an exact name wins, else the longest joined prefix.
/// Returns the match and how many arguments it consumed, or `None` for an unknown flag.
/// A separate value missing at the end of the command line is an `Err`.
pub fn match_flag<K: Copy>(
    table: &[Flag<K>],
    args: &[OsString],
    i: usize,
) -> Option<Result<(Matched<K>, usize), String>> {
    let arg = args[i].as_bytes();
    let mut best: Option<(&Flag<K>, bool)> = None; // (row, exact)
    for row in table {
        let name = row.name.as_bytes();
        let exact = arg == name;
        let prefix = arg.starts_with(name) && matches!(row.style, ValueStyle::Joined | ValueStyle::JoinedOrSeparate);
        if exact && row.style != ValueStyle::Joined {
            best = Some((row, true));
            break;
        }
        if (prefix || exact) && best.is_none_or(|(b, _)| b.name.len() < name.len()) {
            best = Some((row, false));
        }
    }
    let (row, exact) = best?;
    let separate = exact && matches!(row.style, ValueStyle::Separate | ValueStyle::JoinedOrSeparate);
    if separate {
        let Some(value) = args.get(i + 1) else {
            return Some(Err(format!("{} is missing its value", row.name)));
        };
        return Some(Ok((
            Matched {
                kind: row.kind,
                value: Some(value.clone()),
                raw: vec![args[i].clone(), value.clone()],
            },
            2,
        )));
    }
    let value = match row.style {
        ValueStyle::None => None,
        _ => Some(OsString::from_vec(arg[row.name.len()..].to_vec())),
    };
    Some(Ok((
        Matched {
            kind: row.kind,
            value,
            raw: vec![args[i].clone()],
        },
        1,
    )))
}

/// Expand `@file` arguments, recursively, with gcc's quoting rules (whitespace separates; single
/// and double quotes group; a backslash escapes the next character outside single quotes). An
/// `@file` that cannot be read stays as it is, as gcc treats it as an input file name.
///
/// Bounded (see `limits.rs`): a response file that is not a regular file (a FIFO, `/dev/zero`, a
/// directory), one over `limits::RESPONSE_FILE`, or all of them together over
/// `limits::RESPONSE_FILES_TOTAL` is an `Err`, and the call passes through to the compiler.
pub fn expand_response_files(args: &[OsString], cwd: &Path) -> Result<Vec<OsString>, String> {
    let mut out = Vec::with_capacity(args.len());
    let mut budget = crate::limits::RESPONSE_FILES_TOTAL;
    expand_into(args, cwd, 0, &mut budget, &mut out)?;
    Ok(out)
}

fn expand_into(
    args: &[OsString],
    cwd: &Path,
    depth: u32,
    budget: &mut u64,
    out: &mut Vec<OsString>,
) -> Result<(), String> {
    for a in args {
        let bytes = a.as_bytes();
        if bytes.len() > 1 && bytes[0] == b'@' {
            let path = cwd.join(std::ffi::OsStr::from_bytes(&bytes[1..]));
            // Only a file that exists is a response file; the rest is gcc's business.
            if std::fs::metadata(&path).is_ok() {
                let text = crate::limits::read_regular(&path, crate::limits::RESPONSE_FILE.min(*budget))
                    .map_err(|e| format!("response file {}: {e}", path.display()))?;
                *budget -= text.len() as u64;
                if depth >= 16 {
                    return Err("response files nested more than 16 deep".into());
                }
                let inner = split_response_file(&text);
                expand_into(&inner, cwd, depth + 1, budget, out)?;
                continue;
            }
        }
        out.push(a.clone());
    }
    Ok(())
}

pub fn split_response_file(text: &[u8]) -> Vec<OsString> {
    let mut args = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut in_arg = false;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(b'\'') => cur.push(c),
            Some(_) if c == b'\\' && i + 1 < text.len() => {
                i += 1;
                cur.push(text[i]);
            }
            Some(_) => cur.push(c),
            None if c.is_ascii_whitespace() => {
                if in_arg {
                    args.push(OsString::from_vec(std::mem::take(&mut cur)));
                    in_arg = false;
                }
            }
            None => {
                in_arg = true;
                match c {
                    b'\'' | b'"' => quote = Some(c),
                    b'\\' if i + 1 < text.len() => {
                        i += 1;
                        cur.push(text[i]);
                    }
                    _ => cur.push(c),
                }
            }
        }
        i += 1;
    }
    if in_arg {
        args.push(OsString::from_vec(cur));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn response_file_quoting() {
        let got = split_response_file(br#"-DA="x y" 'it''s' a\ b "q\"q"  -c"#);
        assert_eq!(got, os(&["-DA=x y", "its", "a b", "q\"q", "-c"]));
    }

    #[test]
    fn nested_response_files() {
        let dir = std::env::temp_dir().join(format!("cachepot-rsp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("outer"), "-c @inner").unwrap();
        std::fs::write(dir.join("inner"), "'-DX=1 2'\n-O2").unwrap();
        let got = expand_response_files(&os(&["@outer", "a.c", "@missing"]), &dir).unwrap();
        assert_eq!(got, os(&["-c", "-DX=1 2", "-O2", "a.c", "@missing"]));
        std::fs::write(dir.join("loop"), "@loop").unwrap();
        assert!(expand_response_files(&os(&["@loop"]), &dir).is_err());
        // Endless or special response files are refused (the call passes through), not read.
        assert!(expand_response_files(&os(&["@/dev/zero"]), &dir).is_err());
        assert!(expand_response_files(&os(&["@."]), &dir).is_err());
        std::fs::write(dir.join("big"), vec![b'x'; crate::limits::RESPONSE_FILE as usize + 1]).unwrap();
        assert!(expand_response_files(&os(&["@big"]), &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn table_matching() {
        #[derive(Clone, Copy, Debug, PartialEq)]
        enum K {
            Out,
            Inc,
            Opt,
            Std,
        }
        let t = [
            Flag {
                name: "-o",
                style: ValueStyle::JoinedOrSeparate,
                kind: K::Out,
            },
            Flag {
                name: "-I",
                style: ValueStyle::JoinedOrSeparate,
                kind: K::Inc,
            },
            Flag {
                name: "-O",
                style: ValueStyle::Joined,
                kind: K::Opt,
            },
            Flag {
                name: "-std=",
                style: ValueStyle::Joined,
                kind: K::Std,
            },
        ];
        let args = os(&["-o", "a.o", "-Iinc", "-O2", "-std=c11", "-x", "-I"]);
        let (m, n) = match_flag(&t, &args, 0).unwrap().unwrap();
        assert_eq!((m.kind, m.value.unwrap(), n), (K::Out, OsString::from("a.o"), 2));
        let (m, n) = match_flag(&t, &args, 2).unwrap().unwrap();
        assert_eq!((m.kind, m.value.unwrap(), n), (K::Inc, OsString::from("inc"), 1));
        assert_eq!(match_flag(&t, &args, 3).unwrap().unwrap().0.kind, K::Opt);
        assert_eq!(
            match_flag(&t, &args, 4).unwrap().unwrap().0.value.unwrap(),
            OsString::from("c11")
        );
        assert!(match_flag(&t, &args, 5).is_none());
        assert!(match_flag(&t, &args, 6).unwrap().is_err());
    }
}
