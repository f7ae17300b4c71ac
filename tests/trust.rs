//! Trusted shared caches (signed entries and manifests), against a real redis-server and a real S3
//! server (s3s-fs) on loopback: CI signs, developers verify with read-only access. Every forged,
//! replayed, damaged or unsigned object is rejected (a miss, counted as `rejected_signature`), and the
//! build stays right: the objects are always the ones plain gcc makes.
mod common;
mod remote_support;
use common::*;
use remote_support::*;
use std::path::PathBuf;

const BUCKET: &str = "trusted-cache";

#[derive(Clone, Copy)]
enum Kind {
    Redis,
    S3,
}

/// A real shared cache server, and the test's own (administrator's) access to its objects.
struct Remote {
    kind: Kind,
    server: Server,
}

impl Remote {
    fn start(kind: Kind) -> Remote {
        let server = match kind {
            Kind::Redis => redis(&[]),
            Kind::S3 => s3s(true, &[BUCKET]),
        };
        Remote { kind, server }
    }

    /// An env ("machine") using this cache; `read_only`: a developer's read-only access.
    fn env(&self, name: &str, read_only: bool) -> Env {
        let mut env = Env::new(name);
        match self.kind {
            Kind::Redis => env.set("CACHEPOT_REDIS", format!("redis://127.0.0.1:{}/0", self.server.port)),
            Kind::S3 => {
                env.set("CACHEPOT_BUCKET", BUCKET);
                env.set("CACHEPOT_ENDPOINT", format!("127.0.0.1:{}", self.server.port));
                env.set("CACHEPOT_S3_USE_SSL", "false");
                env.set("CACHEPOT_REGION", "us-east-1");
                env.set("AWS_ACCESS_KEY_ID", S3_KEY);
                env.set("AWS_SECRET_ACCESS_KEY", S3_SECRET);
                env.set("AWS_SESSION_TOKEN", "");
                env.set("AWS_PROFILE", "");
                env.set("AWS_EC2_METADATA_DISABLED", "true");
            }
        }
        if read_only {
            env.set("CACHEPOT_REMOTE_READ_ONLY", "1");
        }
        env
    }

    fn redis(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/0", self.server.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    fn s3_path(&self, key: &str) -> PathBuf {
        self.server.dir.join("root").join(BUCKET).join(key)
    }

    /// Every stored object's key.
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = match self.kind {
            Kind::Redis => redis::cmd("KEYS").arg("*").query(&mut self.redis()).unwrap(),
            Kind::S3 => std::fs::read_dir(self.server.dir.join("root").join(BUCKET))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
        };
        keys.sort();
        keys
    }

    fn get(&self, key: &str) -> Vec<u8> {
        match self.kind {
            Kind::Redis => redis::cmd("GET").arg(key).query(&mut self.redis()).unwrap(),
            Kind::S3 => std::fs::read(self.s3_path(key)).unwrap(),
        }
    }

    fn set(&self, key: &str, bytes: &[u8]) {
        match self.kind {
            Kind::Redis => redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .query::<()>(&mut self.redis())
                .unwrap(),
            Kind::S3 => std::fs::write(self.s3_path(key), bytes).unwrap(),
        }
    }
}

/// A new signing key in `dir` (through the real command line); returns (key file, public key).
fn new_key(env: &Env, name: &str) -> (String, String) {
    let file = env.dir.join(name);
    let out = env.ok(&["--new-signing-key", file.to_str().unwrap()]);
    let public = s(&out.stdout).trim().to_string();
    assert!(public.starts_with("cachepot-ed25519:"), "{public}");
    (file.to_str().unwrap().to_string(), public)
}

fn rejected(env: &Env) -> u64 {
    other(env, "rejected_signature")
}

fn signed(bytes: &[u8]) -> bool {
    bytes.starts_with(b"CPOTSIG\x01")
}

/// A signing CI machine fills the cache with `files`; returns the remote's (result, manifest) key of
/// each file, found by building them one at a time.
fn ci_fills(remote: &Remote, ci: &Env, files: &[String]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|f| {
            let before = remote.keys();
            build(ci, std::slice::from_ref(f));
            let new: Vec<String> = remote.keys().into_iter().filter(|k| !before.contains(k)).collect();
            assert_eq!(new.len(), 2, "{new:?}");
            let manifest = new.iter().find(|k| k.ends_with(".manifest")).unwrap().clone();
            let result = new.iter().find(|k| !k.ends_with(".manifest")).unwrap().clone();
            (result, manifest)
        })
        .collect()
}

/// A developer machine: trusts `public`, reads only.
fn developer(remote: &Remote, name: &str, trusted: &str, n: usize) -> Env {
    let mut dev = remote.env(name, true);
    if let Kind::Redis = remote.kind {
        // Read-only credentials, as the README's recipe says: a Redis ACL user that cannot write.
        redis::cmd("ACL")
            .arg(&[
                "SETUSER",
                "developer",
                "on",
                ">dev-secret",
                "~*",
                "+@read",
                "+@connection",
            ])
            .query::<()>(&mut remote.redis())
            .unwrap();
        dev.set(
            "CACHEPOT_REDIS",
            format!("redis://developer:dev-secret@127.0.0.1:{}/0", remote.server.port),
        );
    }
    dev.set("CACHEPOT_TRUSTED_KEYS", trusted);
    write_project(&dev.dir, n);
    dev
}

fn untrusted_writer_then_trusting_reader_compiles_everything(kind: Kind) {
    let remote = Remote::start(kind);
    let writer = remote.env("trust-untrusted-w", false);
    let files = write_project(&writer.dir, 3);
    build(&writer, &files);
    assert!(remote.keys().iter().all(|k| !signed(&remote.get(k))));
    let (_, public) = new_key(&writer, "ci.key");
    let dev = developer(&remote, "trust-untrusted-r", &public, 3);
    assert_eq!(build(&dev, &files), reference_objects(&dev, &files));
    assert_eq!(dev.stat("hits"), 0, "{}", dev.stats());
    assert_eq!(dev.stat("misses"), 3);
    // Each call looked up its manifest, found it unsigned and compiled.
    assert_eq!(rejected(&dev), 3, "{}", dev.stats());
    assert_eq!(other(&dev, "remote.hit"), 0);
    // Nothing unsigned was copied to the local disk: what is there is the reader's own, signed.
    let local = local_entries(&dev.cache);
    assert_eq!(local.len(), 6);
    assert!(local.iter().all(|(_, p)| signed(&std::fs::read(p).unwrap())));
    // A rebuild hits locally and rejects nothing more.
    build(&dev, &files);
    assert_eq!((dev.stat("hits"), rejected(&dev)), (3, 3));
}

fn signing_writer_then_reader_with_public_key_gets_every_hit(kind: Kind) {
    let remote = Remote::start(kind);
    let mut ci = remote.env("trust-signed-w", false);
    let (key, public) = new_key(&ci, "ci.key");
    ci.set("CACHEPOT_SIGNING_KEY", &key);
    let files = write_project(&ci.dir, 4);
    let objects = build(&ci, &files);
    assert_eq!(objects, reference_objects(&ci, &files));
    assert_eq!(remote.keys().len(), 8);
    assert!(remote.keys().iter().all(|k| signed(&remote.get(k))));

    let dev = developer(&remote, "trust-signed-r", &public, 4);
    if let Kind::Redis = kind {
        let url = format!("redis://developer:dev-secret@127.0.0.1:{}/0", remote.server.port);
        let mut as_dev = redis::Client::open(url).unwrap().get_connection().unwrap();
        let denied = redis::cmd("SET").arg("x").arg("y").query::<()>(&mut as_dev);
        assert!(denied.is_err(), "the developer's credentials can write");
    }
    assert_eq!(build(&dev, &files), objects);
    assert_eq!(dev.stat("hits_direct"), 4, "{}", dev.stats());
    assert_eq!((dev.stat("misses"), rejected(&dev), dev.stat("errors")), (0, 0, 0));
    assert_eq!(other(&dev, "remote.hit"), 8);
    // The remote hits were kept locally, re-signed with the reader's own local key.
    build(&dev, &files);
    assert_eq!((dev.stat("hits"), other(&dev, "remote.hit")), (8, 8));

    // A machine that checks nothing still gets every hit from a signed cache.
    let plain = remote.env("trust-signed-plain", true);
    write_project(&plain.dir, 4);
    assert_eq!(build(&plain, &files), objects);
    assert_eq!(plain.stat("hits"), 4, "{}", plain.stats());

    // A reader holding no signing key never writes: only signed objects go to a trusted cache.
    let mut dev_rw = developer(&remote, "trust-signed-rw", &public, 5);
    dev_rw.set("CACHEPOT_REMOTE_READ_ONLY", "0");
    let more = write_project(&dev_rw.dir, 5);
    build(&dev_rw, &more);
    assert_eq!(remote.keys().len(), 8);
    assert_eq!(other(&dev_rw, "remote.write"), 0);
}

fn key_rotation_and_entries_signed_by_another_key(kind: Kind) {
    let remote = Remote::start(kind);
    let mut old_ci = remote.env("trust-rot-old", false);
    let (old_key, old_public) = new_key(&old_ci, "old.key");
    let (new_key_file, new_public) = new_key(&old_ci, "new.key");
    old_ci.set("CACHEPOT_SIGNING_KEY", &old_key);
    let files = write_project(&old_ci.dir, 4);
    build(&old_ci, &files[..2]);
    let mut new_ci = remote.env("trust-rot-new", false);
    new_ci.set("CACHEPOT_SIGNING_KEY", &new_key_file);
    write_project(&new_ci.dir, 4);
    build(&new_ci, &files[2..]);

    // Signed by a key the reader does not trust: rejected, compiled, right.
    let only_new = developer(&remote, "trust-rot-only-new", &new_public, 4);
    assert_eq!(build(&only_new, &files), reference_objects(&only_new, &files));
    assert_eq!(only_new.stat("hits"), 2, "{}", only_new.stats());
    assert_eq!(rejected(&only_new), 2);

    // Both keys trusted during the rotation: every object hits.
    let both = developer(&remote, "trust-rot-both", &format!("{old_public},{new_public}"), 4);
    assert_eq!(build(&both, &files), reference_objects(&both, &files));
    assert_eq!((both.stat("hits"), rejected(&both)), (4, 0), "{}", both.stats());
}

fn entry_replayed_under_another_key_is_rejected(kind: Kind) {
    let remote = Remote::start(kind);
    let mut ci = remote.env("trust-replay-w", false);
    let (key, public) = new_key(&ci, "ci.key");
    ci.set("CACHEPOT_SIGNING_KEY", &key);
    let files = write_project(&ci.dir, 2);
    let keys = ci_fills(&remote, &ci, &files);
    // f0's validly signed result, re-uploaded as f1's result.
    remote.set(&keys[1].0, &remote.get(&keys[0].0));
    let dev = developer(&remote, "trust-replay-r", &public, 2);
    assert_eq!(build(&dev, &files), reference_objects(&dev, &files));
    assert_eq!((dev.stat("hits"), dev.stat("misses")), (1, 1), "{}", dev.stats());
    assert_eq!(rejected(&dev), 1);
}

fn byte_flipped_after_signing_is_rejected(kind: Kind) {
    let remote = Remote::start(kind);
    let mut ci = remote.env("trust-flip-w", false);
    let (key, public) = new_key(&ci, "ci.key");
    ci.set("CACHEPOT_SIGNING_KEY", &key);
    let files = write_project(&ci.dir, 3);
    let keys = ci_fills(&remote, &ci, &files);
    // A byte of f0's object code, of f1's signature, of f2's manifest.
    for (key, at) in [(&keys[0].0, None), (&keys[1].0, Some(20)), (&keys[2].1, None)] {
        let mut bytes = remote.get(key);
        let i = at.unwrap_or(bytes.len() - 5);
        bytes[i] ^= 0x01;
        remote.set(key, &bytes);
    }
    let dev = developer(&remote, "trust-flip-r", &public, 3);
    assert_eq!(build(&dev, &files), reference_objects(&dev, &files));
    assert_eq!((dev.stat("hits"), rejected(&dev)), (0, 3), "{}", dev.stats());
    // Rejected before any decoding: not a corrupt entry, and left alone on a read-only remote.
    assert_eq!(dev.error_kind("corrupt_entry"), 0);
    assert_eq!(remote.keys().len(), 6);
}

fn manifest_swapped_between_two_sources_is_rejected(kind: Kind) {
    let remote = Remote::start(kind);
    let mut ci = remote.env("trust-swap-w", false);
    let (key, public) = new_key(&ci, "ci.key");
    ci.set("CACHEPOT_SIGNING_KEY", &key);
    let files = write_project(&ci.dir, 2);
    let keys = ci_fills(&remote, &ci, &files);
    // f0's manifest (pointing at f0's object) put where f1's manifest was: accepted, it would make
    // f1's build use f0's object.
    remote.set(&keys[1].1, &remote.get(&keys[0].1));
    let dev = developer(&remote, "trust-swap-r", &public, 2);
    assert_eq!(build(&dev, &files), reference_objects(&dev, &files));
    assert_eq!((dev.stat("hits"), rejected(&dev)), (1, 1), "{}", dev.stats());
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod redis_server {
            $(#[test] fn $name() { super::$name(super::Kind::Redis) })*
        }
        mod s3_server {
            $(#[test] fn $name() { super::$name(super::Kind::S3) })*
        }
    };
}

on_both!(
    untrusted_writer_then_trusting_reader_compiles_everything,
    signing_writer_then_reader_with_public_key_gets_every_hit,
    key_rotation_and_entries_signed_by_another_key,
    entry_replayed_under_another_key_is_rejected,
    byte_flipped_after_signing_is_rejected,
    manifest_swapped_between_two_sources_is_rejected,
);

#[test]
fn files_dropped_into_the_local_dir_are_rejected() {
    let mut env = Env::new("trust-local");
    let (key, _) = new_key(&env, "ci.key");
    env.set("CACHEPOT_SIGNING_KEY", &key);
    let files = write_project(&env.dir, 2);
    build(&env, &files);
    let local_key = env.cache.join("local-signing-key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&local_key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // The same sources built by a cache that does not sign: same keys, unsigned files.
    let plain = Env::new("trust-local-plain");
    write_project(&plain.dir, 2);
    build(&plain, &files[..1]);
    let f0_unsigned = local_entries(&plain.cache)
        .into_iter()
        .find(|(name, _)| !name.ends_with(".manifest"))
        .unwrap();
    build(&plain, &files);
    let unsigned = local_entries(&plain.cache);
    let ours = local_entries(&env.cache);
    assert_eq!(
        unsigned.iter().map(|e| &e.0).collect::<Vec<_>>(),
        ours.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    // Unsigned result entries dropped in place of ours (as any process writing to the cache dir
    // could): f0's object, under f0's key and under f1's key, where it would be a wrong object.
    let results: Vec<&(String, PathBuf)> = ours.iter().filter(|e| !e.0.ends_with(".manifest")).collect();
    for (_, path) in &results {
        std::fs::copy(&f0_unsigned.1, path).unwrap();
    }
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.stat("hits"), 0, "{}", env.stats());
    assert_eq!(rejected(&env), 2, "{}", env.stats());
    // Compiled and signed again: hits.
    assert!(results.iter().all(|e| signed(&std::fs::read(&e.1).unwrap())));
    build(&env, &files);
    assert_eq!(env.stat("hits"), 2);

    // Without trust, the signed local objects are still used (their envelope taken off).
    let mut off = Env::new("trust-local-off");
    off.cache = env.cache.clone();
    write_project(&off.dir, 2);
    assert_eq!(build(&off, &files), reference_objects(&off, &files));
    assert_eq!(off.stat("hits"), 4);

    // A local key others could read (or replace) is not used: the local level is left out of the
    // calls, each counting the fault; builds are right and nothing is rejected.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&local_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let rejected_before = rejected(&env);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("local_signing_key"), 2, "{}", env.stats());
    assert_eq!((env.stat("hits"), rejected(&env)), (4, rejected_before));
}

#[test]
fn new_signing_key_command_and_settings() {
    let env = Env::new("trust-cli");
    let (file, public) = new_key(&env, "k/ci.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read(&file).unwrap();
    let again = env.cachepot(&["--new-signing-key", &file]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        s(&again.stderr).contains("never overwrites a key"),
        "{}",
        s(&again.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);

    let mut set = Env::new("trust-cli-config");
    set.set("CACHEPOT_SIGNING_KEY", &file);
    set.set("CACHEPOT_TRUSTED_KEYS", &public);
    let shown = s(&set.ok(&["--show-config"]).stdout);
    assert!(
        shown.contains(&public) && shown.contains("env CACHEPOT_TRUSTED_KEYS"),
        "{shown}"
    );
    let secret = s(&before).lines().find(|l| l.starts_with("secret ")).unwrap()[7..].to_string();
    assert!(!shown.contains(&secret));

    // A damaged public key: one line saying what is accepted; the build still works, uncached.
    let mut bad = Env::new("trust-cli-bad");
    bad.set("CACHEPOT_TRUSTED_KEYS", &public[..public.len() - 4]);
    let out = bad.cachepot(&["--show-config"]);
    assert_eq!(out.status.code(), Some(1));
    let err = s(&out.stderr);
    assert!(
        err.starts_with("cachepot: error: CACHEPOT_TRUSTED_KEYS: ") && err.contains("accepted:"),
        "{err}"
    );
    let files = write_project(&bad.dir, 1);
    assert_eq!(build(&bad, &files), reference_objects(&bad, &files));

    // A signing key file that cannot be read: a counted fault, the build goes on (and still hits
    // locally, the local level having its own key).
    let mut missing = Env::new("trust-cli-missing");
    missing.set(
        "CACHEPOT_SIGNING_KEY",
        missing.dir.join("no-such.key").to_str().unwrap(),
    );
    let files = write_project(&missing.dir, 1);
    build(&missing, &files);
    assert_eq!(build(&missing, &files), reference_objects(&missing, &files));
    assert_eq!(missing.error_kind("signing_key"), 2, "{}", missing.stats());
    assert_eq!(missing.stat("hits"), 1);
}
