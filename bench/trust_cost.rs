//! What verifying signatures costs a hit (issue 13's budget: 0.2 ms).
//!
//!     cargo run --release --example trust_cost [-- ITERATIONS]
//!
//! For stored objects of several sizes (random bytes: entries are compressed, so they do not
//! compress further), the median time of one lookup through the local level as a compile call does
//! it, with trust off (read the file, take no envelope off) and on (also: read the per-cache-dir key,
//! SHA-256 the payload, check the Ed25519 signature, take the envelope off). The difference is what
//! trust adds to a local hit. A remote hit adds, besides, the signature check against the trusted
//! keys and signing its local copy: the `remote hit extra` column (the network round trip, much
//! longer, is not included).

use cachepot::config::{Setting, Source, TrustConfig};
use cachepot::store::Storage;
use cachepot::store::disk::DiskStore;
use cachepot::trust::{self, Level, Namespace, Trust};
use std::path::Path;
use std::time::{Duration, Instant};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Pseudo-random bytes (xorshift): no compression or dedup helps any side.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn main() {
    let iterations: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(400);
    let root = std::env::temp_dir().join(format!("cachepot-trust-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let ci_key = root.join("ci.key");
    let public = trust::new_signing_key(&ci_key).expect("new key");
    let public = trust::PublicKey::parse(&public).unwrap();
    let off_dir = root.join("off");
    let on_dir = root.join("on");
    let cfg = TrustConfig {
        signing_key: Setting {
            value: None,
            source: Source::Default,
        },
        trusted_keys: Setting {
            value: vec![public],
            source: Source::Default,
        },
    };
    let writer_cfg = TrustConfig {
        signing_key: Setting {
            value: Some(ci_key.clone()),
            source: Source::Default,
        },
        ..cfg.clone()
    };
    let open = |dir: &Path, cfg: Option<&TrustConfig>| {
        let trust = cfg.and_then(|c| Trust::open(c, dir));
        Level::local(Box::new(DiskStore::new(dir, 1 << 40)), trust)
    };

    println!(
        "{:>10} {:>14} {:>14} {:>16} {:>18}",
        "object", "trust off µs", "trust on µs", "local hit extra", "remote hit extra"
    );
    for size in [4 << 10, 32 << 10, 128 << 10, 512 << 10, 2 << 20] {
        let payload = noise(size, size as u64);
        open(&off_dir, None).put(KEY, &payload).unwrap();
        open(&on_dir, Some(&cfg)).put(KEY, &payload).unwrap();
        // A remote object, signed by the CI key, and its check plus local re-signing as a remote hit
        // does them (in memory: the network part is the same with trust off).
        let writer = Trust::open(&writer_cfg, &root.join("writer")).unwrap();
        let remote_ns = Namespace::Remote(String::new());
        let remote_object = writer.seal(&remote_ns, KEY, &payload).unwrap();

        let (mut off, mut on, mut remote) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..iterations {
            // Interleaved, so drift in the machine's load falls on both sides alike.
            let t = Instant::now();
            let got = open(&off_dir, None).get(KEY).unwrap().unwrap();
            off.push(t.elapsed());
            assert_eq!(got.len(), size);

            let t = Instant::now();
            let got = open(&on_dir, Some(&cfg)).get(KEY).unwrap().unwrap();
            on.push(t.elapsed());
            assert_eq!(got.len(), size);

            let reader = Trust::open(&cfg, &on_dir).unwrap();
            let t = Instant::now();
            let p = reader.check(&remote_ns, KEY, &remote_object).unwrap();
            let local_copy = reader.seal(&Namespace::Local, KEY, p).unwrap();
            remote.push(t.elapsed());
            assert_eq!(local_copy.len(), remote_object.len());
        }
        let (off, on, remote) = (median(off), median(on), median(remote));
        println!(
            "{:>8}KB {:>14.1} {:>14.1} {:>16.1} {:>18.1}",
            size >> 10,
            us(off),
            us(on),
            us(on) - us(off),
            us(remote)
        );
    }

    // Where the time goes: reading the cache dir's key (once per call), SHA-256 of the payload, and
    // the Ed25519 check of the signature over the binding.
    let mut key_read = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        let trust = Trust::open(&cfg, &on_dir).unwrap();
        key_read.push(t.elapsed());
        drop(trust);
    }
    println!("\nper call: reading the cache dir's key {:.1} µs", us(median(key_read)));
    let tiny = Trust::open(&cfg, &on_dir).unwrap();
    let sealed = tiny.seal(&Namespace::Local, KEY, b"").unwrap();
    let mut check = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        tiny.check(&Namespace::Local, KEY, &sealed).unwrap();
        check.push(t.elapsed());
    }
    println!(
        "per object: Ed25519 check of an empty payload {:.1} µs",
        us(median(check))
    );
    for size in [128 << 10, 2 << 20] {
        let payload = noise(size, 7);
        let mut sha = Vec::new();
        for _ in 0..iterations {
            let t = Instant::now();
            std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &payload));
            sha.push(t.elapsed());
        }
        let d = median(sha);
        println!(
            "SHA-256 of {} KB: {:.1} µs ({:.2} GB/s)",
            size >> 10,
            us(d),
            size as f64 / d.as_secs_f64() / 1e9
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
