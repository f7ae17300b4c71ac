//! The preprocessor's line markers (`# 12 "inc/h.h" 1`): which files a preprocessed source came
//! from. Preprocessor mode learns a direct-mode include set from them.

use std::ffi::OsString;
use std::path::PathBuf;

/// The files a preprocessed source came from, from its line markers (`# 12 "inc/h.h" 1`).
pub fn included_files(preprocessed: &[u8]) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in preprocessed.split(|&b| b == b'\n') {
        if !line.starts_with(b"# ") {
            continue;
        }
        let Some(q) = line.iter().position(|&b| b == b'"') else {
            continue;
        };
        let mut path = Vec::new();
        let mut i = q + 1;
        while i < line.len() && line[i] != b'"' {
            if line[i] == b'\\' && i + 1 < line.len() {
                i += 1;
            }
            path.push(line[i]);
            i += 1;
        }
        if path.is_empty() || path.starts_with(b"<") || path.ends_with(b"//") {
            continue;
        }
        if seen.insert(path.clone()) {
            out.push(PathBuf::from(OsString::from_vec(path)));
        }
    }
    out
}
