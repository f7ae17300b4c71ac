//! Reading a Make-style dependency file (what `-MD` or SUNPRO_DEPENDENCIES write): the
//! prerequisites of its first rule, unescaped. Used by direct mode to learn which files a compile read.

use std::path::PathBuf;

/// The prerequisites of the first rule in `text`.
pub fn prerequisites(text: &[u8]) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    // Join continuation lines of the first rule.
    let mut rule = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' && text.get(i + 1) == Some(&b'\n') {
            rule.push(b' ');
            i += 2;
            continue;
        }
        if text[i] == b'\n' {
            break;
        }
        rule.push(text[i]);
        i += 1;
    }
    // The target ends at the first unescaped ':' followed by whitespace or the end.
    let mut start = None;
    let mut j = 0;
    while j < rule.len() {
        match rule[j] {
            b'\\' => j += 1,
            b':' if rule.get(j + 1).is_none_or(|c| c.is_ascii_whitespace()) => {
                start = Some(j + 1);
                break;
            }
            _ => {}
        }
        j += 1;
    }
    let Some(start) = start else { return Vec::new() };
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut k = start;
    while k < rule.len() {
        let c = rule[k];
        if c == b'\\' && k + 1 < rule.len() && (rule[k + 1] == b' ' || rule[k + 1] == b'#' || rule[k + 1] == b'\\') {
            cur.push(rule[k + 1]);
            k += 2;
            continue;
        }
        if c == b'$' && rule.get(k + 1) == Some(&b'$') {
            cur.push(b'$');
            k += 2;
            continue;
        }
        if c.is_ascii_whitespace() {
            if !cur.is_empty() {
                out.push(PathBuf::from(std::ffi::OsString::from_vec(std::mem::take(&mut cur))));
            }
        } else {
            cur.push(c);
        }
        k += 1;
    }
    if !cur.is_empty() {
        out.push(PathBuf::from(std::ffi::OsString::from_vec(cur)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_first_rule_with_escapes() {
        let text = b"out/a.o: a.c inc/h.h \\\n /usr/include/stdio.h my\\ file.h a$$b.h\ninc/h.h:\n";
        let got = prerequisites(text);
        let want: Vec<PathBuf> = ["a.c", "inc/h.h", "/usr/include/stdio.h", "my file.h", "a$b.h"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn colon_in_target() {
        assert_eq!(prerequisites(b"c:x.o: a.c\n"), vec![PathBuf::from("a.c")]);
    }
}
