//! Redis as the shared cache, against a real redis-server on loopback: one "machine" (cache dir A)
//! fills it, another with an empty cache dir gets every object from it; and every fault (server
//! down, silent, wrong password, damaged entries, killed mid-build, untrusted TLS) still gives a
//! correct object, counted in `--show-stats`.
mod common;
mod remote_support;
use common::*;
use remote_support::*;

fn env_with(name: &str, url: &str) -> Env {
    let mut env = Env::new(name);
    env.set("CACHEPOT_REDIS", url);
    env
}

fn url(server: &Server) -> String {
    format!("redis://127.0.0.1:{}/0", server.port)
}

fn client(server: &Server) -> redis::Connection {
    redis::Client::open(url(server)).unwrap().get_connection().unwrap()
}

fn keys(server: &Server) -> Vec<String> {
    redis::cmd("KEYS").arg("*").query(&mut client(server)).unwrap()
}

#[test]
fn one_machine_fills_the_remote_another_gets_every_object_from_it() {
    let server = redis(&[]);
    let a = env_with("redis-a", &url(&server));
    let files = write_project(&a.dir, 6);
    let objects_a = build(&a, &files);
    assert_eq!(objects_a, reference_objects(&a, &files));
    assert_eq!(a.stat("misses"), 6);
    assert_eq!(other(&a, "remote.write"), 6 * PER_COMPILE);
    assert_eq!(keys(&server).len() as u64, 6 * PER_COMPILE);

    let b = env_with("redis-b", &url(&server));
    write_project(&b.dir, 6);
    let objects_b = build(&b, &files);
    assert_eq!(
        objects_b, objects_a,
        "objects from the remote differ from the ones built"
    );
    // Direct hits: the manifests came from the remote too, so no preprocessor ran on B.
    assert_eq!(b.stat("hits_direct"), 6, "{}", b.stats());
    assert_eq!(b.stat("misses"), 0);
    assert_eq!(other(&b, "remote.hit"), 6 * PER_COMPILE);
    assert_eq!(b.stat("errors"), 0);
    // The remote hits filled B's local level: a rebuild stays on the machine.
    assert_eq!(b.stat("entries"), 6 * PER_COMPILE);
    build(&b, &files);
    assert_eq!(b.stat("hits"), 12);
    assert_eq!(other(&b, "remote.hit"), 6 * PER_COMPILE);
}

#[test]
fn server_down_compiles_counts_unreachable_and_backs_off() {
    let port = free_port();
    let env = env_with("redis-down", &format!("redis://127.0.0.1:{port}"));
    let files = write_project(&env.dir, 3);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.stat("misses"), 3);
    assert_eq!(env.error_kind("remote_unreachable"), 1);
    // The next compiles skip the dead server instead of trying it again.
    assert_eq!(other(&env, "remote.skipped-backoff"), 2);
    assert!(env.cache.join("remote-backoff").is_file());
}

#[test]
fn silent_server_times_out_once_then_is_skipped() {
    let port = silent_server();
    let mut env = env_with("redis-silent", &format!("redis://127.0.0.1:{port}"));
    env.set("CACHEPOT_REMOTE_CONNECT_TIMEOUT", "300ms");
    env.set("CACHEPOT_REMOTE_TIMEOUT", "300ms");
    let files = write_project(&env.dir, 3);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_timeout"), 1);
    assert_eq!(other(&env, "remote.skipped-backoff"), 2);
}

#[test]
fn without_backoff_every_compile_tries_the_server() {
    let port = free_port();
    let mut env = env_with("redis-nobackoff", &format!("redis://127.0.0.1:{port}"));
    env.set("CACHEPOT_REMOTE_BACKOFF", "0");
    let files = write_project(&env.dir, 2);
    build(&env, &files);
    // Each compile tries once on lookup; after that failure the call does not try again to store.
    assert_eq!(env.error_kind("remote_unreachable"), 2);
}

#[test]
fn wrong_password_counts_an_auth_error() {
    let server = redis(&["--requirepass", "right-secret"]);
    let env = env_with(
        "redis-auth",
        &format!("redis://:wrong-secret@127.0.0.1:{}/0", server.port),
    );
    let files = write_project(&env.dir, 2);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_auth"), 1);
    // The right password works, and no password appears in --show-config.
    let good = env_with(
        "redis-auth-ok",
        &format!("redis://:right-secret@127.0.0.1:{}/0", server.port),
    );
    write_project(&good.dir, 2);
    build(&good, &files);
    assert_eq!(other(&good, "remote.write"), 2 * PER_COMPILE);
    let shown = s(&good.ok(&["--show-config"]).stdout);
    assert!(shown.contains("redis://:****@127.0.0.1"), "{shown}");
    assert!(!shown.contains("right-secret"), "{shown}");
    let json = s(&good.ok(&["--show-config", "--json"]).stdout);
    assert!(!json.contains("right-secret"), "{json}");
}

#[test]
fn missing_database_counts_missing_bucket() {
    let server = redis(&["--databases", "2"]);
    let env = env_with("redis-nodb", &format!("redis://127.0.0.1:{}/9", server.port));
    let files = write_project(&env.dir, 1);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_missing_bucket"), 1);
}

#[test]
fn damaged_remote_entries_are_rejected_removed_and_replaced() {
    let server = redis(&[]);
    let mut a = env_with("redis-damage-a", &url(&server));
    // Preprocessor mode: only result entries are stored, so every damage hits an entry.
    a.set("CACHEPOT_DIRECT", "0");
    let files = write_project(&a.dir, 3);
    let good = build(&a, &files);
    let mut con = client(&server);
    let mut ks = keys(&server);
    ks.sort();
    // One entry replaced by garbage, one truncated, one with a flipped byte in the middle.
    let _: () = redis::cmd("SET").arg(&ks[0]).arg("garbage").query(&mut con).unwrap();
    let v: Vec<u8> = redis::cmd("GET").arg(&ks[1]).query(&mut con).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&ks[1])
        .arg(&v[..v.len() / 2])
        .query(&mut con)
        .unwrap();
    let mut v: Vec<u8> = redis::cmd("GET").arg(&ks[2]).query(&mut con).unwrap();
    let mid = v.len() / 2;
    v[mid] ^= 0x40;
    let _: () = redis::cmd("SET").arg(&ks[2]).arg(&v).query(&mut con).unwrap();

    let mut b = env_with("redis-damage-b", &url(&server));
    // Preprocessor mode: only result entries are stored, so every damage hits an entry.
    b.set("CACHEPOT_DIRECT", "0");
    write_project(&b.dir, 3);
    assert_eq!(build(&b, &files), good);
    assert_eq!(b.stat("hits"), 0);
    assert_eq!(b.stat("misses"), 3);
    assert_eq!(b.error_kind("corrupt_entry"), 3);

    // B stored good entries again: a third machine gets hits.
    let mut c = env_with("redis-damage-c", &url(&server));
    // Preprocessor mode: only result entries are stored, so every damage hits an entry.
    c.set("CACHEPOT_DIRECT", "0");
    write_project(&c.dir, 3);
    assert_eq!(build(&c, &files), good);
    assert_eq!(c.stat("hits"), 3);
}

#[test]
fn server_killed_mid_build() {
    let mut server = redis(&[]);
    let env = env_with("redis-killed", &url(&server));
    let files = write_project(&env.dir, 4);
    build(&env, &files[..2]);
    server.kill();
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    // The first two are local hits; the third finds the server gone and starts the back-off.
    assert_eq!(env.stat("hits"), 2);
    assert_eq!(env.stat("misses"), 4);
    assert_eq!(env.error_kind("remote_unreachable"), 1);
    assert_eq!(other(&env, "remote.skipped-backoff"), 1);
}

#[test]
fn read_only_remote_gives_hits_and_stores_nothing() {
    let server = redis(&[]);
    let a = env_with("redis-ro-a", &url(&server));
    let files = write_project(&a.dir, 2);
    build(&a, &files[..1]);
    let mut b = env_with("redis-ro-b", &url(&server));
    b.set("CACHEPOT_REMOTE_READ_ONLY", "1");
    write_project(&b.dir, 2);
    build(&b, &files);
    assert_eq!(b.stat("hits"), 1);
    assert_eq!(b.stat("misses"), 1);
    assert_eq!(other(&b, "remote.write"), 0);
    assert_eq!(other(&b, "remote.write-skipped-read-only"), PER_COMPILE);
    assert_eq!(keys(&server).len() as u64, PER_COMPILE);
}

#[test]
fn local_off_uses_the_remote_alone() {
    let server = redis(&[]);
    let mut env = env_with("redis-nolocal", &url(&server));
    env.set("CACHEPOT_LOCAL", "off");
    let files = write_project(&env.dir, 2);
    let first = build(&env, &files);
    let second = build(&env, &files);
    assert_eq!(first, second);
    assert_eq!(env.stat("hits"), 2);
    assert_eq!(other(&env, "remote.hit"), 2 * PER_COMPILE);
    assert_eq!(env.stat("entries"), 0);
}

#[test]
fn prefix_and_ttl_apply_to_stored_keys() {
    let server = redis(&[]);
    let mut env = env_with("redis-prefix", &url(&server));
    env.set("CACHEPOT_REMOTE_PREFIX", "team-a/");
    env.set("CACHEPOT_REDIS_TTL", "1000");
    let files = write_project(&env.dir, 1);
    build(&env, &files);
    let ks = keys(&server);
    assert_eq!(ks.len() as u64, PER_COMPILE);
    for k in ks {
        assert!(k.starts_with("team-a/"), "{k}");
        let ttl: i64 = redis::cmd("TTL").arg(&k).query(&mut client(&server)).unwrap();
        assert!(ttl > 0 && ttl <= 1000, "ttl {ttl}");
    }
}

#[test]
fn two_remotes_are_a_clear_configuration_error() {
    let mut env = env_with("redis-two", "redis://127.0.0.1:1");
    env.set("CACHEPOT_MEMCACHED", "tcp://127.0.0.1:2");
    let out = env.cachepot(&["--show-config"]);
    assert!(!out.status.success());
    let err = s(&out.stderr);
    assert!(
        err.contains(
            "two remote stores are configured: redis (env CACHEPOT_REDIS) and memcached (env CACHEPOT_MEMCACHED)"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A compile still succeeds, without the cache.
    let files = write_project(&env.dir, 1);
    let out = env.cachepot(&["gcc", "-c", &files[0], "-o", "f0.o"]);
    assert!(out.status.success());
}

#[test]
fn rediss_insecure_accepts_a_self_signed_certificate() {
    let tmp = TestDir::new("tls-insecure");
    let tls = make_tls_files(&tmp.path);
    let server = redis_tls(&tls);
    let a = env_with("rediss-a", &format!("rediss://127.0.0.1:{}/#insecure", server.port));
    let files = write_project(&a.dir, 2);
    let objects = build(&a, &files);
    assert_eq!(other(&a, "remote.write"), 2 * PER_COMPILE);
    let b = env_with("rediss-b", &format!("rediss://127.0.0.1:{}/#insecure", server.port));
    write_project(&b.dir, 2);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(other(&b, "remote.hit"), 2 * PER_COMPILE);
}

#[test]
fn rediss_verifies_the_server_against_a_trusted_ca() {
    let tmp = TestDir::new("tls-ca");
    let tls = make_tls_files(&tmp.path);
    let server = redis_tls(&tls);
    let rediss = format!("rediss://127.0.0.1:{}/", server.port);
    // Not trusted: the certificate is refused, the compile goes on without the remote.
    let mut untrusted = env_with("rediss-untrusted", &rediss);
    untrusted.set("SSL_CERT_FILE", tmp.join("no-such-ca.pem").to_str().unwrap());
    let files = write_project(&untrusted.dir, 1);
    assert_eq!(build(&untrusted, &files), reference_objects(&untrusted, &files));
    assert_eq!(untrusted.stat("errors"), 1, "{}", untrusted.stats());
    assert_eq!(other(&untrusted, "remote.write"), 0);
    // Trusted through SSL_CERT_FILE: verified, and used.
    let mut trusted = env_with("rediss-trusted", &rediss);
    trusted.set("SSL_CERT_FILE", tls.ca.to_str().unwrap());
    write_project(&trusted.dir, 1);
    build(&trusted, &files);
    assert_eq!(trusted.stat("errors"), 0, "{}", trusted.stats());
    assert_eq!(other(&trusted, "remote.write"), PER_COMPILE);
}

#[test]
fn settings_from_the_config_file_tables() {
    let server = redis(&[]);
    let mut env = Env::new("redis-toml");
    let conf = env.dir.write(
        "cachepot.toml",
        format!(
            "[cache.redis]\nurl = \"redis://127.0.0.1:{}/0\"\nttl = 500\n[cache.remote]\nprefix = \"from-file/\"\ntimeout = \"2s\"\n",
            server.port
        ),
    );
    env.set("CACHEPOT_CONF", conf.to_str().unwrap());
    let files = write_project(&env.dir, 1);
    build(&env, &files);
    let ks = keys(&server);
    assert_eq!(ks.len() as u64, PER_COMPILE);
    assert!(ks.iter().all(|k| k.starts_with("from-file/")), "{ks:?}");
    let shown = s(&env.ok(&["--show-config"]).stdout);
    assert!(shown.contains("redis_ttl              = 500"), "{shown}");
    assert!(shown.contains("remote_timeout         = 2s"), "{shown}");
    // An unknown key in a backend table is one clear line.
    std::fs::write(&conf, "[cache.redis]\nurl = \"redis://h\"\nttl_secs = 5\n").unwrap();
    let out = env.cachepot(&["--show-config"]);
    assert!(!out.status.success());
    let err = s(&out.stderr);
    assert!(
        err.contains("`cache.redis.ttl_secs` is not a known setting; accepted: url, ttl"),
        "{err}"
    );
}

#[test]
fn damaged_remote_manifests_are_rejected_and_replaced() {
    let server = redis(&[]);
    let a = env_with("redis-mdamage-a", &url(&server));
    let files = write_project(&a.dir, 2);
    let good = build(&a, &files);
    let mut con = client(&server);
    for k in keys(&server) {
        let _: () = redis::cmd("SET").arg(&k).arg("garbage").query(&mut con).unwrap();
    }
    let b = env_with("redis-mdamage-b", &url(&server));
    write_project(&b.dir, 2);
    assert_eq!(build(&b, &files), good);
    assert_eq!(b.stat("misses"), 2);
    assert_eq!(b.error_kind("corrupt_entry"), 2, "{}", b.stats());
    let c = env_with("redis-mdamage-c", &url(&server));
    write_project(&c.dir, 2);
    assert_eq!(build(&c, &files), good);
    assert_eq!(c.stat("hits_direct"), 2, "{}", c.stats());
}

#[test]
fn rustc_results_and_manifests_come_from_the_remote_too() {
    let server = redis(&[]);
    let rustc = require_tool("rustc");
    // One checkout (rustc records its path), two "machines": two cache dirs, one remote.
    let a = env_with("redis-rust-a", &url(&server));
    let b = env_with("redis-rust-b", &url(&server));
    a.dir.write("src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
    std::fs::create_dir_all(a.dir.join("out")).unwrap();
    let compile = |env: &Env| {
        let out = env
            .cmd(cachepot_bin())
            .current_dir(&a.dir.path)
            .arg(&rustc)
            .args([
                "--crate-name",
                "answer",
                "--edition=2021",
                "src/lib.rs",
                "--crate-type",
                "lib",
            ])
            .args(["--emit=dep-info,metadata,link", "-C", "opt-level=1", "--out-dir", "out"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
        let rlib = a.dir.read("out/libanswer.rlib");
        std::fs::remove_file(a.dir.join("out/libanswer.rlib")).unwrap();
        rlib
    };
    let rlib_a = compile(&a);
    assert_eq!(a.stat("misses"), 1, "{}", a.stats());
    let rlib_b = compile(&b);
    assert_eq!(
        b.stat("hits"),
        1,
        "an empty local dir must get the crate from the remote: {}",
        b.stats()
    );
    assert_eq!(rlib_b, rlib_a);
    assert!(other(&b, "remote.hit") >= 2, "{}", b.stats());
}
