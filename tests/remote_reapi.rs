//! A Bazel Remote Execution API endpoint as the shared cache, against a real BuildGrid (`bgd`, from
//! the Python package index; .ci/setup-remote.sh installs it) on loopback, with an in-memory CAS and
//! Action Cache: hits through the AC and CAS with an empty local dir, an entry too large for a batch
//! call (ByteStream), TLS with a test CA and a client certificate, BuildGrid's own JWT check refusing
//! a wrong token, and a server killed in the middle of a build.
mod common;
mod reapi_support;
mod remote_support;
use common::*;
use reapi_support::*;
use remote_support::*;
use std::process::Command;

/// An HS256 JWT (what BuildGrid's `jwt` authorization checks) for `secret`, valid for an hour.
fn jwt(secret: &str) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let signed = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(format!(r#"{{"sub":"ci","exp":{exp}}}"#).as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
}

#[test]
fn another_machine_gets_every_entry_from_the_action_cache_and_cas() {
    let server = buildgrid(Options::default());
    let a = env_with("reapi-a", &server, "grpc");
    let files = write_project(&a.dir, 4);
    let objects = build(&a, &files);
    assert_eq!(objects, reference_objects(&a, &files));
    assert_eq!(other(&a, "remote.write"), 4 * PER_COMPILE, "{}", a.stats());
    assert_eq!(other(&a, "remote.miss"), 4, "{}", a.stats());

    // An empty cache dir: every compile is a direct hit from the server, no preprocessor run.
    let b = env_with("reapi-b", &server, "grpc");
    write_project(&b.dir, 4);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(b.stat("hits"), 4, "{}", b.stats());
    assert_eq!(other(&b, "remote.hit"), 4 * PER_COMPILE, "{}", b.stats());
    assert_eq!(b.stats()["errors"].as_u64(), Some(0), "{}", b.stats());
    // Now on b's disk: the next build stays on the machine.
    assert_eq!(build(&b, &files), objects);
    assert_eq!(other(&b, "remote.hit"), 4 * PER_COMPILE);

    // Preprocessor mode connects ahead (a thread, while the preprocessor runs): hits too.
    for name in ["reapi-cpp-d", "reapi-cpp-e"] {
        let mut d = env_with(name, &server, "grpc");
        d.set("CACHEPOT_DIRECT", "off");
        write_project(&d.dir, 4);
        assert_eq!(build(&d, &files), objects);
        assert_eq!(d.stats()["errors"].as_u64(), Some(0), "{}", d.stats());
        if name == "reapi-cpp-e" {
            assert_eq!(d.stat("hits_preprocessed"), 4, "{}", d.stats());
        }
    }

    // Another instance name is another cache on the same server (BuildGrid refuses an unknown one).
    let mut c = env_with("reapi-c", &server, "grpc");
    c.set("CACHEPOT_REAPI_INSTANCE", "other");
    write_project(&c.dir, 4);
    assert_eq!(build(&c, &files[..1]), objects[..1]);
    assert_eq!(c.stat("hits"), 0, "{}", c.stats());
    assert_eq!(c.error_kind("remote_missing_bucket"), 1, "{}", c.stats());
}

/// What another REAPI client sees, through BuildGrid's own generated protos: for each local entry
/// `(key, file)`, the Action Cache entry at the documented action digest (src/store/reapi.rs) names
/// a CAS blob whose bytes are exactly the entry's. Prints one line per key: `<key> same|differs|absent`.
const OTHER_CLIENT: &str = r#"
import hashlib, sys, grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re, remote_execution_pb2_grpc as rg
ch = grpc.insecure_channel(sys.argv[1])
ac, cas = rg.ActionCacheStub(ch), rg.ContentAddressableStorageStub(ch)
def digest(b):
    return re.Digest(hash=hashlib.sha256(b).hexdigest(), size_bytes=len(b))
for arg in sys.argv[2:]:
    key, path = arg.split("=", 1)
    command = re.Command(arguments=["cachepot-entry", key]).SerializeToString()
    action = re.Action(command_digest=digest(command), input_root_digest=digest(b""), salt=b"cachepot reapi v1")
    try:
        result = ac.GetActionResult(re.GetActionResultRequest(action_digest=digest(action.SerializeToString())))
    except grpc.RpcError:
        print(key, "absent"); continue
    out = [f for f in result.output_files if f.path == "cachepot-entry"][0]
    blob = cas.BatchReadBlobs(re.BatchReadBlobsRequest(digests=[out.digest])).responses[0].data
    print(key, "same" if blob == open(path, "rb").read() else "differs")
"#;

#[test]
fn entries_are_stored_the_reapi_way_and_signed_ones_verify() {
    let server = buildgrid(Options::default());
    let mut ci = env_with("reapi-signed-ci", &server, "grpc");
    let key_file = ci.dir.join("ci.key");
    let public = s(&ci.ok(&["--new-signing-key", key_file.to_str().unwrap()]).stdout)
        .trim()
        .to_string();
    ci.set("CACHEPOT_SIGNING_KEY", key_file.to_str().unwrap());
    let files = write_project(&ci.dir, 3);
    let objects = build(&ci, &files);
    assert_eq!(other(&ci, "remote.write"), 3 * PER_COMPILE, "{}", ci.stats());

    // An unsigned writer's entries, for the byte-for-byte check (a signed remote object is the
    // local entry plus an envelope; unsigned, the two are the same bytes).
    let plain = env_with("reapi-plain", &server, "grpc");
    plain.dir.write("p.c", "int p(void) { return 7; }\n");
    build(&plain, &["p.c".to_string()]);
    let entries = local_entries(&plain.cache);
    assert_eq!(entries.len() as u64, PER_COMPILE);
    let mut cmd = Command::new(buildgrid_python());
    cmd.arg("-c")
        .arg(OTHER_CLIENT)
        .arg(format!("127.0.0.1:{}", server.port));
    for (key, path) in &entries {
        cmd.arg(format!("{key}={}", path.display()));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", s(&out.stderr));
    let seen = s(&out.stdout);
    assert_eq!(
        seen.lines().filter(|l| l.ends_with(" same")).count(),
        entries.len(),
        "{seen}"
    );

    // A reader trusting the CI key gets every hit, verified.
    let mut dev = env_with("reapi-signed-dev", &server, "grpc");
    dev.set("CACHEPOT_TRUSTED_KEYS", &public);
    write_project(&dev.dir, 3);
    assert_eq!(build(&dev, &files), objects);
    assert_eq!(dev.stat("hits"), 3, "{}", dev.stats());
    assert_eq!(other(&dev, "rejected_signature"), 0, "{}", dev.stats());

    // A reader trusting another key uses nothing of it.
    let mut other_key = env_with("reapi-signed-other", &server, "grpc");
    let other_file = other_key.dir.join("other.key");
    let other_public = s(&other_key
        .ok(&["--new-signing-key", other_file.to_str().unwrap()])
        .stdout)
    .trim()
    .to_string();
    other_key.set("CACHEPOT_TRUSTED_KEYS", &other_public);
    write_project(&other_key.dir, 3);
    assert_eq!(build(&other_key, &files), objects);
    assert_eq!(other_key.stat("hits"), 0, "{}", other_key.stats());
    assert_eq!(other(&other_key, "rejected_signature"), 3, "{}", other_key.stats());
}

#[test]
fn an_entry_over_four_mib_travels_through_bytestream() {
    let server = buildgrid(Options::default());
    let a = env_with("reapi-large-a", &server, "grpc");
    // 6 MiB that do not compress (the entry format compresses), as one string literal.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut src = String::from("const char big[] =\n");
    for line in 0..(6 << 20) / 64 {
        src.push('"');
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            src.push_str(&format!("\\x{:02x}", x as u8));
        }
        src.push_str(if line + 1 == (6 << 20) / 64 { "\";\n" } else { "\"\n" });
    }
    a.dir.write("big.c", &src);
    let files = vec!["big.c".to_string()];
    let objects = build(&a, &files);
    assert!(objects[0].len() > 6 << 20, "{}", objects[0].len());
    assert_eq!(other(&a, "remote.reapi-bytestream-write"), 1, "{}", a.stats());

    let b = env_with("reapi-large-b", &server, "grpc");
    b.dir.write("big.c", &src);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(b.stat("hits"), 1, "{}", b.stats());
    assert_eq!(other(&b, "remote.reapi-bytestream-read"), 1, "{}", b.stats());
}

#[test]
fn tls_with_a_test_ca_and_a_client_certificate() {
    let certs = TestDir::new("reapi-tls-certs");
    let tls = make_tls_files(&certs.path);
    // A client certificate signed by the same CA: the server asks for one (mutual TLS).
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&certs.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", s(&out.stderr));
    };
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/CN=builder",
    ]);
    // With an extension, so that it is an X.509 v3 certificate (rustls takes no v1 ones).
    certs.write("client.cnf", "extendedKeyUsage=clientAuth\n");
    run(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.pem",
        "-days",
        "2",
        "-extfile",
        "client.cnf",
    ]);
    let server = buildgrid(Options {
        tls: Some(&tls),
        client_ca: Some(&tls.ca),
        ..Options::default()
    });
    let with_cert = |name: &str| {
        let mut e = env_with(name, &server, "grpcs");
        e.set("CACHEPOT_REAPI_CA", tls.ca.to_str().unwrap());
        e.set("CACHEPOT_REAPI_CLIENT_CERT", certs.join("client.pem").to_str().unwrap());
        e.set("CACHEPOT_REAPI_CLIENT_KEY", certs.join("client.key").to_str().unwrap());
        e
    };
    let a = with_cert("reapi-tls-a");
    let files = write_project(&a.dir, 2);
    let objects = build(&a, &files);
    assert_eq!(other(&a, "remote.write"), 2 * PER_COMPILE, "{}", a.stats());
    let b = with_cert("reapi-tls-b");
    write_project(&b.dir, 2);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(b.stat("hits"), 2, "{}", b.stats());

    // Without the client certificate the server refuses the handshake: counted, build right.
    let mut c = env_with("reapi-tls-c", &server, "grpcs");
    c.set("CACHEPOT_REAPI_CA", tls.ca.to_str().unwrap());
    write_project(&c.dir, 2);
    assert_eq!(build(&c, &files), objects);
    assert_eq!(c.stat("hits"), 0, "{}", c.stats());
    assert_eq!(c.stats()["errors"].as_u64(), Some(1), "{}", c.stats());

    // Without the test CA the server's certificate is not trusted (the system roots do not have it).
    let mut d = with_cert("reapi-tls-d");
    d.extra_env.retain(|(k, _)| k != "CACHEPOT_REAPI_CA");
    write_project(&d.dir, 2);
    assert_eq!(build(&d, &files), objects);
    assert_eq!(d.stat("hits"), 0, "{}", d.stats());
    assert_eq!(d.stats()["errors"].as_u64(), Some(1), "{}", d.stats());
}

#[test]
fn a_wrong_token_is_refused_and_counted_and_never_shown() {
    let secret = "cachepot-test-jwt-secret";
    let server = buildgrid(Options {
        jwt_secret: Some(secret),
        ..Options::default()
    });
    let good = jwt(secret);
    let mut a = env_with("reapi-jwt-a", &server, "grpc");
    a.set("CACHEPOT_REAPI_HEADERS", format!("authorization=Bearer {good}"));
    let files = write_project(&a.dir, 2);
    let objects = build(&a, &files);
    assert_eq!(other(&a, "remote.write"), 2 * PER_COMPILE, "{}", a.stats());

    let mut b = env_with("reapi-jwt-b", &server, "grpc");
    let wrong = jwt("another-secret");
    b.set("CACHEPOT_REAPI_HEADERS", format!("authorization=Bearer {wrong}"));
    write_project(&b.dir, 2);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(b.stat("hits"), 0, "{}", b.stats());
    assert_eq!(b.error_kind("remote_auth"), 1, "{}", b.stats());
    let shown = s(&b.ok(&["--show-config"]).stdout);
    assert!(
        shown.contains("reapi_headers") && shown.contains("authorization=****"),
        "{shown}"
    );
    assert!(!shown.contains(&wrong) && !shown.contains("Bearer"), "{shown}");

    // No token at all: refused too.
    let c = env_with("reapi-jwt-c", &server, "grpc");
    write_project(&c.dir, 2);
    assert_eq!(build(&c, &files), objects);
    assert_eq!(c.error_kind("remote_auth"), 1, "{}", c.stats());

    let mut d = env_with("reapi-jwt-d", &server, "grpc");
    d.set("CACHEPOT_REAPI_HEADERS", format!("authorization=Bearer {good}"));
    write_project(&d.dir, 2);
    assert_eq!(build(&d, &files), objects);
    assert_eq!(d.stat("hits"), 2, "{}", d.stats());
}

#[test]
fn a_server_killed_in_the_middle_of_a_build_leaves_the_build_right() {
    let mut server = buildgrid(Options::default());
    let a = env_with("reapi-kill", &server, "grpc");
    let files = write_project(&a.dir, 4);
    let first = build(&a, &files[..2]);
    server.kill();
    let rest = build(&a, &files[2..]);
    assert_eq!([first, rest].concat(), reference_objects(&a, &files));
    assert_eq!(a.stats()["errors"].as_u64(), Some(1), "{}", a.stats());
    assert_eq!(a.error_kind("remote_unreachable"), 1, "{}", a.stats());
    assert_eq!(other(&a, "remote.skipped-backoff"), 1, "{}", a.stats());
}

#[test]
fn bad_settings_get_a_one_line_answer() {
    let mut env = Env::new("reapi-bad");
    env.set("CACHEPOT_REAPI", "http://127.0.0.1:1");
    let out = env.cachepot(&["--show-config"]);
    assert!(!out.status.success());
    assert!(
        s(&out.stderr)
            .contains("REAPI URL \"http://127.0.0.1:1\" (env CACHEPOT_REAPI) is not valid; accepted: grpc://"),
        "{}",
        s(&out.stderr)
    );
    let mut env = Env::new("reapi-bad-header");
    env.set("CACHEPOT_REAPI", "grpc://127.0.0.1:1");
    env.set("CACHEPOT_REAPI_HEADERS", "x-api-key-bin=topsecret");
    let out = env.cachepot(&["--show-config"]);
    assert!(!out.status.success());
    let err = s(&out.stderr);
    assert!(
        err.contains("REAPI header x-api-key-bin (env CACHEPOT_REAPI_HEADERS) is not valid"),
        "{err}"
    );
    assert!(!err.contains("topsecret"), "{err}");
    let mut env = Env::new("reapi-bad-toolchain");
    env.set("CACHEPOT_REAPI", "grpc://127.0.0.1:1");
    env.set("CACHEPOT_REMOTE_TOOLCHAIN", "copy");
    let out = env.cachepot(&["--show-config"]);
    assert!(!out.status.success());
    let err = s(&out.stderr);
    assert!(
        err.contains("remote toolchain \"copy\" (env CACHEPOT_REMOTE_TOOLCHAIN) is not valid; accepted: worker"),
        "{err}"
    );
    let mut env = Env::new("reapi-good-toolchain");
    env.set("CACHEPOT_REAPI", "grpc://127.0.0.1:1");
    env.set("CACHEPOT_REMOTE_TOOLCHAIN", "upload");
    let out = env.ok(&["--show-config"]);
    assert!(s(&out.stdout).contains("remote_toolchain"), "{}", s(&out.stdout));
}
