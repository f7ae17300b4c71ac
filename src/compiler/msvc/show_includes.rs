//! `/showIncludes`: cl.exe and clang-cl print one line per header they open, on stdout,
//! `Note: including file: <spaces for depth><path>`. A direct-mode miss learns its include set
//! from these lines; when the user did not ask for them, they are taken out of what is shown.
//!
//! A localized cl.exe prints another prefix ("Hinweis: Einlesen der Datei: …"). Such a listing
//! would read as "no headers" and could freeze a stale result, so a stdout line that ends in
//! `: <existing file>` but lacks the English prefix makes the listing untrusted (the call is
//! still compiled and shown; it is just not stored). `VSLANG=1033` selects English.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

pub const PREFIX: &[u8] = b"Note: including file:";

/// The headers a stdout lists, in order without repeats (`None` when the listing looks
/// localized), and the stdout without the listing lines.
pub fn split(stdout: &[u8], cwd: &Path) -> (Option<Vec<PathBuf>>, Vec<u8>) {
    let mut rest = Vec::with_capacity(stdout.len());
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut trusted = true;
    for line in stdout.split_inclusive(|&b| b == b'\n') {
        let Some(tail) = line.strip_prefix(PREFIX) else {
            if looks_like_foreign_listing(line, cwd) {
                trusted = false;
            }
            rest.extend_from_slice(line);
            continue;
        };
        let path = trim_line_end(tail.trim_ascii_start());
        if path.is_empty() {
            continue;
        }
        if seen.insert(path.to_vec()) {
            files.push(PathBuf::from(OsString::from_vec(path.to_vec())));
        }
    }
    (trusted.then_some(files), rest)
}

fn trim_line_end(s: &[u8]) -> &[u8] {
    let mut s = s;
    while let [head @ .., b'\n' | b'\r'] = s {
        s = head;
    }
    s
}

/// `<words>: <spaces><path of an existing file>`: the shape of a /showIncludes line in another
/// language.
fn looks_like_foreign_listing(line: &[u8], cwd: &Path) -> bool {
    let line = trim_line_end(line);
    let Some(pos) = line.windows(2).rposition(|w| w == b": ") else {
        return false;
    };
    let tail = line[pos + 2..].trim_ascii_start();
    if tail.is_empty() {
        return false;
    }
    let path = PathBuf::from(OsString::from_vec(tail.to_vec()));
    cwd.join(path).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines_are_taken_out() {
        let d = std::env::temp_dir().join(format!("cachepot-showinc-{}", std::process::id()));
        std::fs::create_dir_all(d.join("inc")).unwrap();
        std::fs::write(d.join("inc/h.h"), "").unwrap();
        let out = b"a.c\r\nNote: including file: inc/h.h\r\nNote: including file:  inc/g.h\nwarning: x\nNote: including file: inc/h.h\n";
        let (files, rest) = split(out, &d);
        assert_eq!(files.unwrap(), vec![PathBuf::from("inc/h.h"), PathBuf::from("inc/g.h")]);
        assert_eq!(rest, b"a.c\r\nwarning: x\n");
        let german = b"Hinweis: Einlesen der Datei: inc/h.h\n";
        assert!(split(german, &d).0.is_none());
        let diag = b"a.c(3): warning C4996: 'x': deprecated\n";
        assert_eq!(split(diag, &d).0.unwrap(), Vec::<PathBuf>::new());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
