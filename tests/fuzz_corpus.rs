//! Replays every committed fuzz corpus (fuzz/corpus/<target>/) through the function its fuzz target
//! calls (cachepot::fuzzing), on the stable toolchain: whatever a fuzzing run found stays a
//! regression test. Also checks the crafted entries the issue names are refused.

use cachepot::entry::{self, Entry};
use cachepot::fuzzing;
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

#[test]
fn every_corpus_replays_without_a_panic() {
    for target in fuzzing::TARGETS {
        let dir = corpus_dir(target);
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every fuzz target has a committed corpus)", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!files.is_empty(), "{} is empty", dir.display());
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let r = std::panic::catch_unwind(|| assert!(fuzzing::run(target, &data)));
            assert!(r.is_ok(), "fuzz target {target} panics on {}", f.display());
        }
    }
}

/// A body with the given sections, framed as an entry with a correct checksum.
fn framed(exit: i32, count: u32, sections: &[(u8, &str, u64, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&exit.to_le_bytes());
    body.extend_from_slice(&count.to_le_bytes());
    for (kind, name, len, data) in sections {
        body.push(*kind);
        body.extend_from_slice(&(name.len() as u16).to_le_bytes());
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(data);
    }
    entry::encode_framed(entry::MAGIC, &body)
}

/// The crafted entries: each is refused by both decoders, and no writer is ever asked for a role
/// that is not a plain output name.
fn crafted() -> Vec<(&'static str, Vec<u8>)> {
    let mut bomb = framed(0, 0, &[]);
    bomb.truncate(33);
    bomb[8] = 1; // zstd
    bomb.extend_from_slice(&zstd::bulk::compress(&vec![0u8; 32 << 20], 19).unwrap());
    let mut lying_len = framed(0, 1, &[(2, "", 3, b"abc")]);
    lying_len[9..17].copy_from_slice(&u64::MAX.to_le_bytes());
    vec![
        ("huge section size", framed(0, 1, &[(1, "object", 1 << 40, b"x")])),
        ("huge stdout", framed(0, 1, &[(2, "", 1 << 30, b"x")])),
        ("count larger than sections", framed(0, 5, &[(1, "object", 1, b"x")])),
        (
            "count smaller than sections",
            framed(0, 1, &[(1, "object", 1, b"x"), (2, "", 1, b"y")]),
        ),
        ("../ role", framed(0, 1, &[(1, "../../etc/passwd", 1, b"x")])),
        ("absolute role", framed(0, 1, &[(1, "/tmp/x", 1, b"x")])),
        ("zstd bomb", bomb),
        ("lying body length", lying_len),
    ]
}

#[test]
fn crafted_entries_are_refused() {
    for (what, bytes) in crafted() {
        assert!(Entry::decode(&bytes).is_err(), "{what}: accepted by decode");
        let mut asked = Vec::new();
        let r = entry::stream(&bytes[..], |role| {
            asked.push(role.to_string());
            Ok(Some(std::io::sink()))
        });
        assert!(r.is_err(), "{what}: accepted by stream");
        assert!(
            asked.iter().all(|r| r == "object"),
            "{what}: a writer was asked for {asked:?}"
        );
    }
}

/// Writes the seed corpus (run once by hand: `cargo test --test fuzz_corpus -- --ignored`); the
/// committed corpus is this, minimized and grown by fuzzing runs (`cargo fuzz cmin`).
#[test]
#[ignore]
fn write_seed_corpus() {
    use cachepot::coordinator::protocol::{Reply, Request};
    let seeds: Vec<(&str, &str, Vec<u8>)> = {
        let mut v: Vec<(&str, &str, Vec<u8>)> = Vec::new();
        let e = Entry {
            exit_status: 0,
            files: vec![
                ("object".into(), b"\x7fELF....".to_vec()),
                ("dep".into(), b"a.o: a.c\n".to_vec()),
            ],
            stdout: b"out".to_vec(),
            stderr: b"warning: x\n".repeat(50),
        };
        v.push(("entry", "sample", e.encode()));
        v.push(("entry", "empty", Entry::default().encode()));
        for (what, bytes) in crafted() {
            v.push(("entry", what, bytes));
        }
        let mut m = cachepot::manifest::Manifest::default();
        m.add(cachepot::manifest::ResultSet {
            result_key: "ab".repeat(32),
            files: vec![cachepot::manifest::IncludeFile {
                path: "inc/h.h".into(),
                digest: 7,
                stat: 9,
            }],
            dirs: vec![cachepot::manifest::WatchedDir {
                path: "a".into(),
                state: 1,
                names: vec!["h.h".into()],
            }],
        });
        v.push(("manifest", "sample", m.encode()));
        let mut rm = cachepot::rust::manifest::Manifest::default();
        rm.add(cachepot::rust::manifest::Candidate {
            result_key: "cd".repeat(32),
            sources: vec![("src/lib.rs".into(), "ef".repeat(32))],
            env: vec![("CARGO_PKG_NAME".into(), Some("x".into())), ("OUT_DIR".into(), None)],
            ..Default::default()
        });
        v.push(("rust_manifest", "sample", rm.encode()));
        v.push((
            "gcc_args",
            "compile",
            b"-c\0a.c\0-o\0out/a.o\0-MD\0-MF\0a.d\0-Iinc\0-DX=1\0@rsp\xff-O2 \"-DY=1 2\" 'it''s' a\\ b".to_vec(),
        ));
        v.push(("gcc_args", "link", b"a.c\0b.c\0-o\0prog".to_vec()));
        v.push((
            "rustc_args",
            "lib",
            b"--crate-name\0foo\0--edition=2021\0src/lib.rs\0--crate-type\0lib\0--emit=dep-info,metadata,link\0-C\0opt-level=3\0--out-dir\0target/debug/deps\0-C\0extra-filename=-abc\0--extern\0bar=target/libbar.rlib\0-L\0dependency=target".to_vec(),
        ));
        v.push((
            "rustc_args",
            "depinfo",
            b"target/foo.d: src/lib.rs src/a.rs\n\nsrc/lib.rs:\nsrc/a.rs:\n\n# env-dep:CARGO_PKG_NAME=foo\n".to_vec(),
        ));
        v.push((
            "depfile",
            "rule",
            b"out/a.o: a.c inc/h.h \\\n /usr/include/stdio.h my\\ file.h a$$b.h\ninc/h.h:\n".to_vec(),
        ));
        for (i, r) in [Request::Acquire, Request::Status].iter().enumerate() {
            v.push(("protocol", ["acquire", "status"][i], r.encode()[4..].to_vec()));
        }
        let mut figures = std::collections::BTreeMap::new();
        figures.insert("slots".to_string(), 4u64);
        v.push(("protocol", "status-reply", Reply::Status(figures).encode()));
        v.push(("protocol", "granted", Reply::Granted { waited: true }.encode()));
        v.push((
            "config",
            "full",
            b"recache = false\ndirect = true\nlog = \"warn\"\n[cache.disk]\ndir = \"/tmp/c\"\nsize = \"10G\"\n[coordinator]\nmode = \"off\"\njobs = 8\n[cache.redis]\nurl = \"redis://127.0.0.1:6379\"\n".to_vec(),
        ));
        v
    };
    for (target, name, bytes) in seeds {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{}", name.replace([' ', '/', '.'], "-"))), bytes).unwrap();
    }
}
