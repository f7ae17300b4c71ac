//! Memcached as the shared cache, against real memcached servers on loopback: keys spread over
//! several servers, entries over the item size limit split into chunks, and the faults.
mod common;
mod remote_support;
use common::*;
use remote_support::*;

fn env_with(name: &str, servers: &str) -> Env {
    let mut env = Env::new(name);
    env.set("CACHEPOT_MEMCACHED", servers);
    env
}

fn addr(server: &Server) -> String {
    format!("tcp://127.0.0.1:{}", server.port)
}

/// Items currently stored on a server (`stats` → `curr_items`).
fn items(server: &Server) -> u64 {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(b"stats\r\n").unwrap();
    for line in BufReader::new(s).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("STAT curr_items ") {
            return n.trim().parse().unwrap();
        }
        assert_ne!(line, "END", "no curr_items in stats");
    }
    panic!("stats ended early")
}

#[test]
fn two_servers_share_the_keys_and_another_machine_gets_every_object() {
    let m1 = memcached(&[]);
    let m2 = memcached(&[]);
    let servers = format!("{} {}", addr(&m1), addr(&m2));
    let a = env_with("mc-a", &servers);
    let files = write_project(&a.dir, 8);
    let objects = build(&a, &files);
    assert_eq!(objects, reference_objects(&a, &files));
    assert_eq!(other(&a, "remote.write"), 8 * PER_COMPILE);
    assert_eq!(items(&m1) + items(&m2), 8 * PER_COMPILE);
    assert!(
        items(&m1) > 0 && items(&m2) > 0,
        "keys not spread: {} {}",
        items(&m1),
        items(&m2)
    );

    let b = env_with("mc-b", &servers);
    write_project(&b.dir, 8);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(b.stat("hits"), 8);
    assert_eq!(other(&b, "remote.hit"), 8 * PER_COMPILE);
    assert_eq!(b.stat("errors"), 0);
}

/// A source whose object is about `kib` KiB of incompressible-looking data.
fn big_source(dir: &TestDir, name: &str, kib: usize) {
    let mut src = String::from("const unsigned int big[] = {");
    let mut x: u32 = 12345;
    for _ in 0..kib * 256 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        src.push_str(&format!("{x}u,"));
    }
    src.push_str("};\n");
    dir.write(name, src);
}

#[test]
fn entries_over_the_item_size_are_split_into_chunks() {
    let server = memcached(&["-I", "1m"]);
    let a = env_with("mc-big-a", &addr(&server));
    big_source(&a.dir, "big.c", 2500);
    let files = vec!["big.c".to_string()];
    let objects = build(&a, &files);
    assert!(
        objects[0].len() > 2 << 20,
        "object too small to need chunks: {}",
        objects[0].len()
    );
    assert_eq!(other(&a, "remote.memcached-split"), 1);
    assert!(
        items(&server) >= 4,
        "expected an index and chunks, found {}",
        items(&server)
    );

    let b = env_with("mc-big-b", &addr(&server));
    big_source(&b.dir, "big.c", 2500);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(other(&b, "remote.hit"), PER_COMPILE);
}

#[test]
fn an_item_size_above_the_servers_is_skipped_and_counted() {
    // The server takes 1 MiB items, but we were told 4 MiB: the server refuses, nothing breaks.
    let server = memcached(&["-I", "1m"]);
    let mut env = env_with("mc-toolarge", &addr(&server));
    env.set("CACHEPOT_MEMCACHED_ITEM_SIZE", "4M");
    big_source(&env.dir, "big.c", 2500);
    let files = vec!["big.c".to_string()];
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(other(&env, "remote.memcached-too-large"), 1);
    assert_eq!(env.stat("errors"), 0);
}

#[test]
fn server_down_or_silent_compiles_and_counts() {
    let down = env_with("mc-down", &format!("tcp://127.0.0.1:{}", free_port()));
    let files = write_project(&down.dir, 2);
    assert_eq!(build(&down, &files), reference_objects(&down, &files));
    assert_eq!(down.error_kind("remote_unreachable"), 1);
    assert_eq!(other(&down, "remote.skipped-backoff"), 1);

    let mut silent = env_with("mc-silent", &format!("tcp://127.0.0.1:{}", silent_server()));
    silent.set("CACHEPOT_REMOTE_TIMEOUT", "300ms");
    write_project(&silent.dir, 2);
    assert_eq!(build(&silent, &files), reference_objects(&silent, &files));
    assert_eq!(silent.error_kind("remote_timeout"), 1);
}

#[test]
fn damaged_items_are_rejected_and_replaced() {
    use std::io::{BufRead, BufReader, Write};
    let server = memcached(&[]);
    let a = env_with("mc-damage-a", &addr(&server));
    let files = write_project(&a.dir, 1);
    let good = build(&a, &files);
    // Overwrite every key we can find with a truncated value: list keys with lru_crawler.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.write_all(b"lru_crawler metadump all\r\n").unwrap();
    let mut keys = Vec::new();
    for line in BufReader::new(s.try_clone().unwrap()).lines() {
        let line = line.unwrap();
        if line == "END" {
            break;
        }
        if let Some(k) = line.strip_prefix("key=") {
            keys.push(k.split(' ').next().unwrap().to_string());
        }
    }
    // Both the manifest and the entry: the manifest is read first and found damaged.
    assert_eq!(keys.len() as u64, PER_COMPILE);
    for k in &keys {
        s.write_all(format!("set {k} 0 0 5\r\n\x00trun\r\n").as_bytes())
            .unwrap();
    }
    let b = env_with("mc-damage-b", &addr(&server));
    write_project(&b.dir, 1);
    assert_eq!(build(&b, &files), good);
    assert_eq!(b.error_kind("corrupt_entry"), 1);
    let c = env_with("mc-damage-c", &addr(&server));
    write_project(&c.dir, 1);
    assert_eq!(build(&c, &files), good);
    assert_eq!(c.stat("hits"), 1);
}

#[test]
fn server_killed_mid_build() {
    let mut server = memcached(&[]);
    let env = env_with("mc-killed", &addr(&server));
    let files = write_project(&env.dir, 3);
    build(&env, &files[..1]);
    server.kill();
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_unreachable"), 1);
}

#[test]
fn bad_server_list_is_one_clear_line() {
    let env = env_with("mc-bad", "tcp://127.0.0.1");
    let out = env.cachepot(&["--show-stats"]);
    assert!(!out.status.success());
    let err = s(&out.stderr);
    assert!(err.contains("memcached server \"tcp://127.0.0.1\""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
