//! MSVC-style command lines: `@response` files (UTF-8, or UTF-16 with a byte-order mark, as
//! Visual Studio and CMake write them) split with the Windows rules that cl.exe and clang-cl use,
//! and the `CL` / `_CL_` environment variables, split the same way.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Expand `@file` arguments, recursively (16 deep at most). An `@file` that cannot be read stays as
/// it is: the parser then sees an input it does not know and the call passes through.
pub fn expand(args: &[OsString], cwd: &Path) -> Result<Vec<OsString>, String> {
    let mut out = Vec::with_capacity(args.len());
    expand_into(args, cwd, 0, &mut out)?;
    Ok(out)
}

fn expand_into(args: &[OsString], cwd: &Path, depth: u32, out: &mut Vec<OsString>) -> Result<(), String> {
    for a in args {
        let bytes = a.as_bytes();
        if bytes.len() > 1 && bytes[0] == b'@' {
            let path = cwd.join(std::ffi::OsStr::from_bytes(&bytes[1..]));
            if let Ok(raw) = std::fs::read(&path) {
                if depth >= 16 {
                    return Err("response files nested more than 16 deep".into());
                }
                let text = decode(&raw).ok_or_else(|| format!("{}: not valid UTF-16", path.display()))?;
                expand_into(&split_windows(&text), cwd, depth + 1, out)?;
                continue;
            }
        }
        out.push(a.clone());
    }
    Ok(())
}

/// The text of a response file: UTF-16 (little- or big-endian) when it starts with a byte-order
/// mark, else the bytes as they are (a UTF-8 byte-order mark removed). `None` for broken UTF-16.
pub fn decode(raw: &[u8]) -> Option<Vec<u8>> {
    let utf16 = |body: &[u8], from: fn([u8; 2]) -> u16| -> Option<Vec<u8>> {
        if !body.len().is_multiple_of(2) {
            return None;
        }
        let units = body.chunks_exact(2).map(|c| from([c[0], c[1]]));
        let text: Result<String, _> = char::decode_utf16(units).collect();
        text.ok().map(String::into_bytes)
    };
    match raw {
        [0xff, 0xfe, body @ ..] => utf16(body, u16::from_le_bytes),
        [0xfe, 0xff, body @ ..] => utf16(body, u16::from_be_bytes),
        [0xef, 0xbb, 0xbf, body @ ..] => Some(body.to_vec()),
        _ => Some(raw.to_vec()),
    }
}

/// Split a command line the way the Microsoft C runtime (and LLVM's TokenizeWindowsCommandLine)
/// does: whitespace separates; double quotes group; `""` inside quotes is a literal quote; 2n
/// backslashes before a quote are n backslashes, 2n+1 are n and a literal quote; other
/// backslashes are literal.
pub fn split_windows(text: &[u8]) -> Vec<OsString> {
    let mut args = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut in_arg = false;
    let mut quoted = false;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c == b'\\' {
            let start = i;
            while i < text.len() && text[i] == b'\\' {
                i += 1;
            }
            let n = i - start;
            in_arg = true;
            if i < text.len() && text[i] == b'"' {
                cur.extend(std::iter::repeat_n(b'\\', n / 2));
                if n % 2 == 1 {
                    cur.push(b'"');
                    i += 1;
                }
            } else {
                cur.extend(std::iter::repeat_n(b'\\', n));
            }
            continue;
        }
        if c == b'"' {
            in_arg = true;
            if quoted && text.get(i + 1) == Some(&b'"') {
                cur.push(b'"');
                i += 2;
                continue;
            }
            quoted = !quoted;
            i += 1;
            continue;
        }
        if !quoted && matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            if in_arg {
                args.push(OsString::from_vec(std::mem::take(&mut cur)));
                in_arg = false;
            }
            i += 1;
            continue;
        }
        in_arg = true;
        cur.push(c);
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
    fn windows_quoting() {
        let got = split_windows(br#"/DA="x y" "a b"c \\server\share "q\"q" a\\\\"b c" "" /c"#);
        assert_eq!(
            got,
            os(&["/DA=x y", "a bc", r"\\server\share", "q\"q", r"a\\b c", "", "/c"])
        );
        assert_eq!(split_windows(br#""say ""hi""""#), os(&["say \"hi\""]));
        assert_eq!(split_windows(b"  \r\n"), Vec::<OsString>::new());
    }

    #[test]
    fn utf16_response_files() {
        let text = "/c a.c /DNAME=\u{e9}";
        let mut le = vec![0xff, 0xfe];
        let mut be = vec![0xfe, 0xff];
        for u in text.encode_utf16() {
            le.extend(u.to_le_bytes());
            be.extend(u.to_be_bytes());
        }
        assert_eq!(decode(&le).unwrap(), text.as_bytes());
        assert_eq!(decode(&be).unwrap(), text.as_bytes());
        let mut utf8 = vec![0xef, 0xbb, 0xbf];
        utf8.extend(text.as_bytes());
        assert_eq!(decode(&utf8).unwrap(), text.as_bytes());
        assert!(decode(&[0xff, 0xfe, 0x00]).is_none(), "odd length");
        assert!(decode(&[0xff, 0xfe, 0x00, 0xd8]).is_none(), "lone surrogate");
    }

    #[test]
    fn nested_expansion() {
        let dir = std::env::temp_dir().join(format!("cachepot-msvc-rsp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut outer = vec![0xff, 0xfe];
        for u in "/c @inner".encode_utf16() {
            outer.extend(u.to_le_bytes());
        }
        std::fs::write(dir.join("outer.rsp"), outer).unwrap();
        std::fs::write(dir.join("inner"), "\"/DX=1 2\"\r\n/O2").unwrap();
        let got = expand(&os(&["@outer.rsp", "a.c", "@missing"]), &dir).unwrap();
        assert_eq!(got, os(&["/c", "/DX=1 2", "/O2", "a.c", "@missing"]));
        std::fs::write(dir.join("loop"), "@loop").unwrap();
        assert!(expand(&os(&["@loop"]), &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
