//! Enough of C's lexer to find directives, identifiers, string literals and comments in a source
//! or header (compiler/probes.rs reads `__has_include` with it): line splices, `//` and `/* */`
//! comments, string, character and raw string literals, pp-numbers with digit separators. Not a
//! preprocessor: nothing is expanded, and every other byte is a one-byte punctuator.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Also keywords and directive names.
    Ident,
    Str,
    Char,
    Number,
    Punct,
}

/// One token of a line.
#[derive(Debug, Clone, Copy)]
pub struct Tok {
    pub kind: Kind,
    /// Byte offsets in the spliced text.
    pub start: usize,
    pub end: usize,
}

impl Tok {
    /// Is this the one-byte punctuator `c`?
    pub fn is_punct(&self, b: &[u8], c: u8) -> bool {
        self.kind == Kind::Punct && b[self.start] == c
    }
}

/// A directive line from its `#` (or the digraph `%:`, from its `:`): the directive's name is at
/// index 1 of what is returned. `None` for a line of text.
pub fn directive<'t>(b: &[u8], line: &'t [Tok]) -> Option<&'t [Tok]> {
    match line {
        [hash, ..] if hash.is_punct(b, b'#') => Some(line),
        [p, c, ..] if p.is_punct(b, b'%') && c.is_punct(b, b':') && c.start == p.end => Some(&line[1..]),
        _ => None,
    }
}

/// Does the text hold a trigraph (`??=` is `#`, `??/` a backslash that may splice lines)? Only
/// `-trigraphs` (or a strict `-std=`) reads them; this lexer does not.
pub fn has_trigraph(text: &[u8]) -> bool {
    memchr::memmem::find_iter(text, b"??").any(|at| {
        text.get(at + 2)
            .is_some_and(|c| matches!(c, b'=' | b'/' | b'\'' | b'(' | b')' | b'!' | b'<' | b'>' | b'-'))
    })
}

/// The text with its line splices (backslash, optional blanks, newline) removed, as the
/// compiler's second translation phase does.
pub fn splice(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memchr(b'\\', text).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' {
            let mut j = i + 1;
            while j < text.len() && matches!(text[j], b' ' | b'\t' | b'\r') {
                j += 1;
            }
            if j < text.len() && text[j] == b'\n' {
                i = j + 1;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

/// Call `f` with the tokens of each line (comments dropped: a block comment spanning lines joins
/// them, as it does for the compiler).
pub fn for_each_line(b: &[u8], mut f: impl FnMut(&[Tok])) {
    let n = b.len();
    let mut line: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < n {
        let c = b[i];
        let start = i;
        let kind = match c {
            b'\n' => {
                f(&line);
                line.clear();
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | 0x0b | 0x0c => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = memchr::memchr(b'\n', &b[i..]).map_or(n, |k| i + k);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = memchr::memmem::find(&b[i + 2..], b"*/").map_or(n, |k| i + 2 + k + 2);
                continue;
            }
            b'"' | b'\'' => {
                i = quoted_end(b, i);
                if c == b'"' { Kind::Str } else { Kind::Char }
            }
            c if is_ident_start(c) => {
                while i < n && is_ident_char(b[i]) {
                    i += 1;
                }
                let ident = &b[start..i];
                if b.get(i) == Some(&b'"')
                    && matches!(ident, b"R" | b"LR" | b"uR" | b"UR" | b"u8R")
                    && let Some(end) = raw_string_end(b, i)
                {
                    i = end;
                    Kind::Str
                } else {
                    Kind::Ident
                }
            }
            c if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                i += 1;
                while i < n {
                    let d = b[i];
                    let sign = matches!(d, b'+' | b'-') && matches!(b[i - 1], b'e' | b'E' | b'p' | b'P');
                    let separator = d == b'\'' && b.get(i + 1).is_some_and(|e| e.is_ascii_alphanumeric());
                    if is_ident_char(d) || d == b'.' || sign || separator {
                        i += 1;
                    } else {
                        break;
                    }
                }
                Kind::Number
            }
            _ => {
                i += 1;
                Kind::Punct
            }
        };
        line.push(Tok { kind, start, end: i });
    }
    f(&line);
}

/// The end of the string or character literal opening at `i`; an unterminated one ends before
/// the newline.
fn quoted_end(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'\n' => return j,
            c if c == q => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// The end of the raw string literal whose `"` is at `i` (`R"delim(…)delim"`), or `None` when it
/// is not one.
fn raw_string_end(b: &[u8], i: usize) -> Option<usize> {
    let open = i + 1 + b[i + 1..].iter().take(17).position(|&c| c == b'(')?;
    let delim = &b[i + 1..open];
    if delim
        .iter()
        .any(|c| c.is_ascii_whitespace() || matches!(c, b')' | b'\\' | b'"'))
    {
        return None;
    }
    let mut close = Vec::with_capacity(delim.len() + 2);
    close.push(b')');
    close.extend_from_slice(delim);
    close.push(b'"');
    Some(memchr::memmem::find(&b[open..], &close).map_or(b.len(), |k| open + k + close.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<Vec<(Kind, String)>> {
        let b = splice(text);
        let mut out = Vec::new();
        for_each_line(&b, |l| {
            out.push(
                l.iter()
                    .map(|t| (t.kind, String::from_utf8_lossy(&b[t.start..t.end]).into_owned()))
                    .collect(),
            )
        });
        out
    }

    #[test]
    fn directives_and_digraphs() {
        let b = b"#if x\n%:define y\n% :z\n";
        let mut names = Vec::new();
        for_each_line(b, |l| {
            names.push(directive(b, l).map(|d| String::from_utf8_lossy(&b[d[1].start..d[1].end]).into_owned()))
        });
        assert_eq!(names, [Some("if".to_string()), Some("define".to_string()), None, None]);
        assert!(has_trigraph(b"??=define") && has_trigraph(b"x ??/") && !has_trigraph(b"a?? b ?"));
    }

    #[test]
    fn splices_join_lines() {
        assert_eq!(splice(b"a\\  \nb\\\r\nc").as_ref(), b"abc");
        assert_eq!(lines(b"#if a \\\n && b\n").len(), 2);
    }

    #[test]
    fn comments_strings_and_numbers() {
        let l = lines(b"x /* a\n b */ \"/*\" 1'000 u8R\"d(\")d\" 'c' // y\nz");
        let kinds: Vec<Kind> = l[0].iter().map(|t| t.0).collect();
        assert_eq!(kinds, [Kind::Ident, Kind::Str, Kind::Number, Kind::Str, Kind::Char]);
        assert_eq!(l[0][3].1, "u8R\"d(\")d\"");
        assert_eq!(l[1], [(Kind::Ident, "z".to_string())]);
    }
}
