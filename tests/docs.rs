//! The documentation keeps up with the code: every `CACHEPOT_*` variable the code reads and every
//! config file key it accepts appears in the man page and the README, and nothing they document is
//! gone from the code.
use cachepot::config::{ENV_VARS, file_keys};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The man page as a reader sees the words: groff's `\-` is a hyphen.
fn man() -> String {
    read("man/cachepot.1").replace("\\-", "-")
}

/// Every `CACHEPOT_[A-Z0-9_]+` word in `text`.
fn cachepot_words(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("CACHEPOT_") {
        let start = i + pos;
        let mut end = start + "CACHEPOT_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_uppercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        let word = text[start..end].trim_end_matches('_');
        if word.len() > "CACHEPOT".len() {
            out.insert(word.to_string());
        }
        i = end;
    }
    out
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_variable_the_code_reads_is_listed_and_documented() {
    let mut files = Vec::new();
    rust_sources(&repo().join("src"), &mut files);
    let mut in_code = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // The code, not its unit tests (which name misspelt variables on purpose).
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        // String literals naming a variable: "CACHEPOT_…".
        for w in cachepot_words(text) {
            if text.contains(&format!("\"{w}\"")) {
                in_code.insert(w);
            }
        }
    }
    let listed: BTreeSet<String> = ENV_VARS.iter().map(|s| s.to_string()).collect();
    let unlisted: Vec<_> = in_code.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "read in src/ but missing from config::ENV_VARS: {unlisted:?}"
    );
    let stale: Vec<_> = listed.difference(&in_code).collect();
    assert!(
        stale.is_empty(),
        "in config::ENV_VARS but read nowhere in src/: {stale:?}"
    );
    let (man, readme) = (cachepot_words(&man()), cachepot_words(&read("README.md")));
    for (doc, words) in [("man/cachepot.1", &man), ("README.md", &readme)] {
        let missing: Vec<_> = listed.difference(words).collect();
        assert!(missing.is_empty(), "{doc} does not document {missing:?}");
    }
}

#[test]
fn nothing_documented_is_gone_from_the_code() {
    // Variables of the scripts (install.sh, .ci/, pkg/) and of the test harness, not of cachepot.
    let scripts = [
        read("install.sh"),
        read(".ci/run"),
        read(".ci/setup-remote.sh"),
        read("pkg/test-deb.sh"),
        read("tests/common/mod.rs"),
    ]
    .concat();
    for doc in ["man/cachepot.1", "README.md"] {
        let text = if doc.ends_with(".1") { man() } else { read(doc) };
        for w in cachepot_words(&text) {
            assert!(
                ENV_VARS.contains(&w.as_str()) || scripts.contains(&w),
                "{doc} documents {w}, which nothing reads any more"
            );
        }
    }
}

/// The keys the man page documents under CONFIGURATION FILE: `.SS [table]` (or "Top level"), then
/// `.TP` / `.B key` for each key.
fn man_file_keys() -> BTreeSet<String> {
    let man = read("man/cachepot.1");
    let section = man
        .split("\n.SH ")
        .find(|s| s.starts_with("CONFIGURATION FILE"))
        .expect("the man page has a CONFIGURATION FILE section");
    let mut keys = BTreeSet::new();
    let mut table = String::new();
    let mut after_tp = false;
    for line in section.lines() {
        if let Some(ss) = line.strip_prefix(".SS ") {
            table = ss
                .trim()
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or("")
                .to_string();
        } else if after_tp && let Some(key) = line.strip_prefix(".B ") {
            let key = key.trim().replace("\\-", "-");
            keys.insert(if table.is_empty() {
                key
            } else {
                format!("{table}.{key}")
            });
        }
        after_tp = line.trim() == ".TP";
    }
    keys
}

#[test]
fn every_config_key_is_in_the_man_page_and_the_readme_and_no_other() {
    let code: BTreeSet<String> = file_keys().into_iter().collect();
    let man = man_file_keys();
    assert_eq!(
        code.difference(&man).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys the code accepts that man/cachepot.1 (CONFIGURATION FILE) does not document"
    );
    assert_eq!(
        man.difference(&code).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys man/cachepot.1 documents that the code does not accept"
    );
    // The README names a key as `key` or `[table] key`, with its table in brackets somewhere.
    let readme = read("README.md");
    for key in &code {
        let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
        let named = readme.contains(&format!("`{name}`"))
            || readme.contains(&format!("] {name}`"))
            || readme.contains(&format!("`{name} ="))
            || readme.contains(&format!("\n{name} = "));
        assert!(named, "README.md does not name the config key {key}");
        if !table.is_empty() {
            assert!(
                readme.contains(&format!("[{table}]")),
                "README.md does not name the table [{table}]"
            );
        }
    }
}
