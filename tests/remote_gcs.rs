//! Google Cloud Storage as the shared cache, against gcp-storage-emulator on loopback. The emulator
//! checks no token, so the OAuth path is exercised through the key file's token_uri, which points
//! at the test's own token endpoint: it checks the JWT's RS256 signature with openssl and the
//! public half of the key, then answers a token.
mod common;
mod remote_support;
use common::*;
use remote_support::*;
use std::sync::{Arc, Mutex};

const BUCKET: &str = "build-cache";

fn env_with(name: &str, server: &Server, bucket: &str) -> Env {
    let mut env = Env::new(name);
    env.set("CACHEPOT_GCS_BUCKET", bucket);
    env.set("CACHEPOT_GCS_ENDPOINT", format!("http://127.0.0.1:{}", server.port));
    env.set("GOOGLE_APPLICATION_CREDENTIALS", "");
    env.set("STORAGE_EMULATOR_HOST", "");
    env
}

type Seen = Arc<Mutex<Vec<SeenRequest>>>;

/// A token endpoint that accepts any well-formed JWT bearer request (verified afterwards).
fn token_endpoint() -> (String, Seen) {
    let (port, seen) = http_endpoint(|req| {
        let body = s(&req.body);
        if req.method == "POST" && body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer") {
            (
                200,
                r#"{"access_token":"ya29.test-token","expires_in":3599,"token_type":"Bearer"}"#.into(),
            )
        } else {
            (
                400,
                format!("{{\"error\":\"invalid_grant\",\"got\":\"{}\"}}", body.len()),
            )
        }
    });
    (format!("http://127.0.0.1:{port}/token"), seen)
}

fn assertion(req: &SeenRequest) -> String {
    let body = s(&req.body);
    let a = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("assertion="))
        .expect("assertion");
    a.replace("%2E", ".")
}

#[test]
fn read_write_key_file_fills_the_bucket_and_another_machine_gets_every_object() {
    let server = gcs_emulator(BUCKET);
    let (token_uri, seen) = token_endpoint();
    let mut a = env_with("gcs-a", &server, BUCKET);
    let (key, public) = service_account_key(&a.dir, &token_uri);
    a.set("CACHEPOT_GCS_KEY_PATH", key.to_str().unwrap());
    a.set("CACHEPOT_GCS_RW_MODE", "READ_WRITE");
    let files = write_project(&a.dir, 4);
    let objects = build(&a, &files);
    assert_eq!(objects, reference_objects(&a, &files));
    assert_eq!(other(&a, "remote.write"), 4 * PER_COMPILE, "{}", a.stats());
    // One token for the whole build: kept in a 0600 file in the cache dir.
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let claims = verify_jwt(&a.dir, &assertion(&requests[0]), &public);
    assert!(
        claims.contains("\"iss\":\"builder@test.iam.gserviceaccount.com\""),
        "{claims}"
    );
    assert!(claims.contains("devstorage.read_write"), "{claims}");
    assert!(claims.contains(&format!("\"aud\":\"{token_uri}\"")), "{claims}");
    use std::os::unix::fs::PermissionsExt;
    let kept = a.cache.join("remote-gcs-token");
    assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);

    let mut b = env_with("gcs-b", &server, BUCKET);
    b.set("GOOGLE_APPLICATION_CREDENTIALS", key.to_str().unwrap());
    b.set("CACHEPOT_GCS_RW_MODE", "READ_WRITE");
    write_project(&b.dir, 4);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(b.stat("hits"), 4, "{}", b.stats());
    assert_eq!(other(&b, "remote.hit"), 4 * PER_COMPILE);
    let shown = s(&b.ok(&["--show-config"]).stdout) + &s(&b.ok(&["--show-stats"]).stdout);
    assert!(
        !shown.contains("ya29.test-token") && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
}

#[test]
fn read_only_by_default_gets_hits_and_says_it_stores_nothing() {
    let server = gcs_emulator(BUCKET);
    let (url_port, _) = http_endpoint(|_| {
        (
            200,
            r#"{"accessToken":"tok","expireTime":"2099-01-01T00:00:00Z"}"#.into(),
        )
    });
    let mut a = env_with("gcs-ro-a", &server, BUCKET);
    a.set(
        "CACHEPOT_GCS_CREDENTIALS_URL",
        format!("http://127.0.0.1:{url_port}/token"),
    );
    a.set("CACHEPOT_GCS_RW_MODE", "READ_WRITE");
    let files = write_project(&a.dir, 2);
    let objects = build(&a, &files[..1]);
    assert_eq!(other(&a, "remote.write"), PER_COMPILE, "{}", a.stats());

    let mut b = env_with("gcs-ro-b", &server, BUCKET);
    b.set(
        "CACHEPOT_GCS_CREDENTIALS_URL",
        format!("http://127.0.0.1:{url_port}/token"),
    );
    write_project(&b.dir, 2);
    let built = build(&b, &files);
    assert_eq!(built[0], objects[0]);
    assert_eq!(b.stat("hits"), 1, "{}", b.stats());
    assert_eq!(other(&b, "remote.write"), 0);
    assert_eq!(other(&b, "remote.write-skipped-read-only"), PER_COMPILE);
    let shown = s(&b.ok(&["--show-config"]).stdout);
    assert!(shown.contains("READ_ONLY: this cache stores nothing"), "{shown}");
    assert!(shown.contains("remote_read_only       = true"), "{shown}");
}

#[test]
fn refused_token_is_an_auth_error() {
    let server = gcs_emulator(BUCKET);
    let (port, _) = http_endpoint(|_| (401, r#"{"error":"invalid_client"}"#.into()));
    let mut env = env_with("gcs-refused", &server, BUCKET);
    let (key, _) = service_account_key(&env.dir, &format!("http://127.0.0.1:{port}/token"));
    env.set("CACHEPOT_GCS_KEY_PATH", key.to_str().unwrap());
    let files = write_project(&env.dir, 2);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_auth"), 1, "{}", env.stats());
}

#[test]
fn missing_bucket_is_counted() {
    let server = gcs_emulator(BUCKET);
    let (url_port, _) = http_endpoint(|_| (200, r#"{"access_token":"tok","expires_in":600}"#.into()));
    let mut env = env_with("gcs-nobucket", &server, "no-such-bucket");
    env.set("CACHEPOT_GCS_CREDENTIALS_URL", format!("http://127.0.0.1:{url_port}/t"));
    env.set("CACHEPOT_GCS_RW_MODE", "READ_WRITE");
    let files = write_project(&env.dir, 2);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_missing_bucket"), 1, "{}", env.stats());
}

#[test]
fn damaged_object_is_rejected_and_replaced_and_a_killed_server_is_survived() {
    let mut server = gcs_emulator(BUCKET);
    let (url_port, _) = http_endpoint(|_| (200, r#"{"access_token":"tok","expires_in":600}"#.into()));
    let rw = |name: &str| {
        let mut e = env_with(name, &server, BUCKET);
        e.set("CACHEPOT_GCS_CREDENTIALS_URL", format!("http://127.0.0.1:{url_port}/t"));
        e.set("CACHEPOT_GCS_RW_MODE", "READ_WRITE");
        e
    };
    let a = rw("gcs-damage-a");
    let files = write_project(&a.dir, 2);
    let good = build(&a, &files[..1]);
    // Overwrite every stored object with garbage through the emulator's upload API.
    let entries = local_entries(&a.cache);
    assert_eq!(entries.len() as u64, PER_COMPILE);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    for (key, _) in &entries {
        let resp = agent
            .post(format!(
                "http://127.0.0.1:{}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={key}",
                server.port
            ))
            .send(&b"garbage"[..])
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let b = rw("gcs-damage-b");
    write_project(&b.dir, 2);
    assert_eq!(build(&b, &files[..1]), good);
    assert_eq!(b.error_kind("corrupt_entry"), 1, "{}", b.stats());
    let c = rw("gcs-damage-c");
    write_project(&c.dir, 2);
    assert_eq!(build(&c, &files[..1]), good);
    assert_eq!(c.stat("hits"), 1, "{}", c.stats());

    server.kill();
    assert_eq!(build(&c, &files), reference_objects(&c, &files));
    assert_eq!(c.error_kind("remote_unreachable"), 1, "{}", c.stats());
}
