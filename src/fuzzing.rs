//! The functions the fuzz targets (fuzz/fuzz_targets/) call, one per decoder of bytes cachepot did
//! not just write. They live in the library so that `cargo test` (tests/fuzz_corpus.rs) replays
//! every committed corpus on the stable toolchain: each crash found stays a regression test.
//!
//! Each function feeds its input to the decoder and checks what must hold for any input: no
//! panic; a decoded value re-encodes to something that decodes to the same value; nothing is
//! written but the outputs asked for. Allocation is bounded by `limits.rs` (libFuzzer's
//! `-malloc_limit_mb` catches a breach).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// The names of the targets, for the corpus replay.
pub const TARGETS: &[&str] = &[
    "signature",
    "entry",
    "manifest",
    "rust_manifest",
    "gcc_args",
    "rustc_args",
    "depfile",
    "protocol",
    "config",
];

/// Run target `name` on `data`; false for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "entry" => entry(data),
        "manifest" => manifest(data),
        "rust_manifest" => rust_manifest(data),
        "gcc_args" => gcc_args(data),
        "rustc_args" => rustc_args(data),
        "depfile" => depfile(data),
        "protocol" => protocol(data),
        "config" => config(data),
        "signature" => signature(data),
        _ => return false,
    }
    true
}

/// The entry decoder, both ways it is used: streamed (C hits) and whole (Rust hits). Only roles
/// that are output names may be asked for; a streamed entry that verifies must equal the decoded one.
pub fn entry(data: &[u8]) {
    use crate::entry::{Entry, stream};
    let decoded = Entry::decode(data);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let streamed = stream(data, |role| {
        assert!(
            !role.is_empty() && !role.contains('/') && !role.contains(".."),
            "role {role:?} reached a writer"
        );
        files.push((role.to_string(), Vec::new()));
        Ok(Some(std::io::Cursor::new(Vec::new())))
    });
    match (&decoded, &streamed) {
        (Ok(e), Ok(r)) => {
            assert_eq!(
                (e.exit_status, &e.stdout, &e.stderr),
                (r.exit_status, &r.stdout, &r.stderr)
            );
            let roles: Vec<&String> = e.files.iter().map(|f| &f.0).collect();
            assert_eq!(roles, r.roles.iter().collect::<Vec<_>>());
            assert_eq!(&Entry::decode(&e.encode()).unwrap(), e);
        }
        (Err(_), Err(_)) => {}
        // The streamed decoder may refuse what the whole one accepts only on its own bounds.
        (Ok(_), Err(_)) => {}
        (Err(e), Ok(_)) => panic!("stream accepted an entry decode refused: {e}"),
    }
}

/// The direct-mode manifest decoder (src/manifest.rs).
pub fn manifest(data: &[u8]) {
    use crate::manifest::Manifest;
    if let Ok(m) = Manifest::decode(data) {
        for r in &m.results {
            assert!(r.result_key.len() == 64, "result key {:?}", r.result_key);
        }
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }
    // The same bytes as an unframed body, so the fuzzer reaches the grammar without the checksum.
    if let Ok(m) = Manifest::decode(&crate::entry::encode_framed(b"CPOTMAN", data)) {
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }
}

/// The Rust manifest decoder (src/rust/manifest.rs), framed and as a bare body.
pub fn rust_manifest(data: &[u8]) {
    use crate::rust::manifest::{MAGIC, Manifest};
    for bytes in [data.to_vec(), crate::entry::encode_framed(MAGIC, data)] {
        if let Ok(m) = Manifest::decode(&bytes) {
            for c in &m.candidates {
                assert!(c.result_key.len() == 64, "result key {:?}", c.result_key);
            }
            assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        }
    }
}

/// The gcc/clang argument parser after response-file expansion. Input: arguments separated by
/// NUL; after a 0xff byte, the text of `@rsp`, a response file in a scratch directory.
pub fn gcc_args(data: &[u8]) {
    use crate::compiler::{args, gcc};
    let (argv, rsp) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let dir = scratch_dir();
    if let Some(text) = rsp {
        let _ = std::fs::write(dir.join("rsp"), text);
        let _ = args::split_response_file(text);
    }
    let argv = split_nul(argv);
    let before = listing(&dir);
    if let Ok(expanded) = args::expand_response_files(&argv, &dir) {
        let _ = gcc::parse(&expanded, &dir, &|_| None);
    }
    assert_eq!(before, listing(&dir), "parsing wrote a file");
}

/// The rustc argument parser and its dep-info parser.
pub fn rustc_args(data: &[u8]) {
    let _ = crate::compiler::rustc::parse(&split_nul(data));
    let _ = crate::compiler::rustc::parse_dep_info(&String::from_utf8_lossy(data));
}

/// The Make-style dependency file parser.
pub fn depfile(data: &[u8]) {
    for p in crate::compiler::gcc::depfile::prerequisites(data) {
        assert!(!p.as_os_str().is_empty());
    }
}

/// The coordinator protocol: a frame's length prefix, then both message decoders, then a reply
/// read from a byte stream as the client reads it.
pub fn protocol(data: &[u8]) {
    use crate::coordinator::protocol::{self, Reply, Request};
    if data.len() >= 4 {
        let _ = protocol::check_length(data[..4].try_into().unwrap());
    }
    if let Ok(r) = Request::decode(data) {
        assert_eq!(Request::decode(&r.encode()[4..]).unwrap(), r);
    }
    if let Ok(r) = Reply::decode(data) {
        let encoded = r.encode();
        assert!(encoded.len() <= 4 + protocol::MAX_FRAME as usize);
    }
    let _ = protocol::read_reply(&mut std::io::Cursor::new(data));
}

/// The signature envelope (trust.rs) and the public-key text: an envelope that decodes is a view
/// into the input (key id, signature, payload), never more.
pub fn signature(data: &[u8]) {
    if let Ok(e) = crate::trust::decode_envelope(data) {
        assert!(e.payload.len() + e.signature.len() + e.key_id.len() < data.len());
    }
    let _ = crate::trust::PublicKey::parse(&String::from_utf8_lossy(data));
}

/// The config file (TOML, every table and setting), read as `CACHEPOT_CONF`.
pub fn config(data: &[u8]) {
    let file = scratch_dir().join("config.toml");
    if std::fs::write(&file, data).is_err() {
        return;
    }
    let f = file.clone().into_os_string();
    let _ = crate::config::Config::load_with(&|name| match name {
        "CACHEPOT_CONF" => Some(f.clone()),
        "HOME" => Some(OsString::from("/nonexistent-home")),
        _ => None,
    });
}

fn split_nul(data: &[u8]) -> Vec<OsString> {
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect()
}

/// A directory of this process for the files a target needs (response file, config file).
fn scratch_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cachepot-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

fn listing(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
