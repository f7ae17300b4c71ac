//! S3 as the shared cache, against s3s-fs on loopback, which checks SigV4 signatures (so wrong
//! credentials are a real failure). Credentials from the environment, a profile file, the
//! instance metadata service, AWS_IAM_CREDENTIALS_URL and a web identity: the network ones are the
//! test's own endpoints on loopback, reached through the documented overrides; nothing is ever
//! sent to the real metadata address.
mod common;
mod remote_support;
use common::*;
use remote_support::*;

const BUCKET: &str = "build-cache";

/// An env using `server`'s bucket, with every AWS credential source off unless a test turns it on.
fn env_with(name: &str, server: &Server, bucket: &str) -> Env {
    let mut env = Env::new(name);
    env.set("CACHEPOT_BUCKET", bucket);
    env.set("CACHEPOT_ENDPOINT", format!("127.0.0.1:{}", server.port));
    env.set("CACHEPOT_S3_USE_SSL", "false");
    env.set("CACHEPOT_REGION", "us-east-1");
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_IAM_CREDENTIALS_URL",
        "AWS_ENDPOINT_URL_STS",
    ] {
        env.set(v, "");
    }
    env.set(
        "AWS_SHARED_CREDENTIALS_FILE",
        env.dir.join("no-aws-credentials").to_str().unwrap(),
    );
    env.set("AWS_EC2_METADATA_DISABLED", "true");
    env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9");
    env
}

fn with_keys(mut env: Env, key: &str, secret: &str) -> Env {
    env.set("AWS_ACCESS_KEY_ID", key);
    env.set("AWS_SECRET_ACCESS_KEY", secret);
    env
}

fn objects_in(server: &Server, bucket: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![server.dir.join("root").join(bucket)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else if !name.starts_with('.') {
                found.push(e.path());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn one_machine_fills_the_bucket_another_gets_every_object_from_it() {
    let server = s3s(true, &[BUCKET]);
    let a = with_keys(env_with("s3-a", &server, BUCKET), S3_KEY, S3_SECRET);
    let files = write_project(&a.dir, 5);
    let objects = build(&a, &files);
    assert_eq!(objects, reference_objects(&a, &files));
    assert_eq!(other(&a, "remote.write"), 5 * PER_COMPILE, "{}", a.stats());
    assert_eq!(objects_in(&server, BUCKET).len() as u64, 5 * PER_COMPILE);

    let b = with_keys(env_with("s3-b", &server, BUCKET), S3_KEY, S3_SECRET);
    write_project(&b.dir, 5);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(b.stat("hits"), 5);
    assert_eq!(b.stat("misses"), 0);
    assert_eq!(other(&b, "remote.hit"), 5 * PER_COMPILE);
    assert_eq!(b.stat("errors"), 0);
}

#[test]
fn wrong_secret_is_refused_by_the_signature_check() {
    let server = s3s(true, &[BUCKET]);
    let env = with_keys(env_with("s3-wrong", &server, BUCKET), S3_KEY, "not-the-secret");
    let files = write_project(&env.dir, 2);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_auth"), 1, "{}", env.stats());
    assert!(objects_in(&server, BUCKET).is_empty());
    let shown = s(&env.ok(&["--show-config"]).stdout);
    assert!(!shown.contains("not-the-secret"), "{shown}");
}

// No missing-bucket test here: s3s-fs does not model one for objects (its GET answers NoSuchKey
// and its PUT creates the bucket). NoSuchBucket → remote-missing-bucket is unit-tested in
// store/http.rs; tests/remote_redis.rs has the missing-database case.

#[test]
fn server_down_silent_or_killed() {
    let mut server = s3s(true, &[BUCKET]);
    let env = with_keys(env_with("s3-killed", &server, BUCKET), S3_KEY, S3_SECRET);
    let files = write_project(&env.dir, 3);
    build(&env, &files[..1]);
    server.kill();
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_unreachable"), 1, "{}", env.stats());

    let mut silent = with_keys(env_with("s3-silent", &server, BUCKET), S3_KEY, S3_SECRET);
    silent.set("CACHEPOT_ENDPOINT", format!("127.0.0.1:{}", silent_server()));
    silent.set("CACHEPOT_REMOTE_TIMEOUT", "300ms");
    write_project(&silent.dir, 2);
    assert_eq!(build(&silent, &files[..2]), reference_objects(&silent, &files[..2]));
    assert_eq!(silent.error_kind("remote_timeout"), 1, "{}", silent.stats());
}

#[test]
fn damaged_objects_are_rejected_and_replaced() {
    let server = s3s(true, &[BUCKET]);
    let a = with_keys(env_with("s3-damage-a", &server, BUCKET), S3_KEY, S3_SECRET);
    let files = write_project(&a.dir, 2);
    let good = build(&a, &files);
    let stored = objects_in(&server, BUCKET);
    // Every object (manifests and entries): half garbage, half truncated.
    for (i, path) in stored.iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        let damaged = if i % 2 == 0 {
            b"garbage".to_vec()
        } else {
            bytes[..bytes.len() / 3].to_vec()
        };
        std::fs::write(path, damaged).unwrap();
    }
    let b = with_keys(env_with("s3-damage-b", &server, BUCKET), S3_KEY, S3_SECRET);
    write_project(&b.dir, 2);
    assert_eq!(build(&b, &files), good);
    assert_eq!(b.error_kind("corrupt_entry"), 2, "{}", b.stats());
    let c = with_keys(env_with("s3-damage-c", &server, BUCKET), S3_KEY, S3_SECRET);
    write_project(&c.dir, 2);
    assert_eq!(build(&c, &files), good);
    assert_eq!(c.stat("hits"), 2, "{}", c.stats());
}

#[test]
fn credentials_from_a_profile_and_the_seed_key_prefix() {
    let server = s3s(true, &[BUCKET]);
    let mut env = env_with("s3-profile", &server, BUCKET);
    let file = env.dir.write(
        "aws-credentials",
        format!("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[ci]\naws_access_key_id = {S3_KEY}\naws_secret_access_key = {S3_SECRET}\n"),
    );
    env.set("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap());
    env.set("AWS_PROFILE", "ci");
    env.set("CACHEPOT_S3_KEY_PREFIX", "teamx/");
    let files = write_project(&env.dir, 1);
    build(&env, &files);
    assert_eq!(other(&env, "remote.write"), PER_COMPILE, "{}", env.stats());
    let stored = objects_in(&server, BUCKET);
    assert_eq!(stored.len() as u64, PER_COMPILE);
    let prefix_dir = server.dir.join("root").join(BUCKET).join("teamx");
    assert!(stored.iter().all(|p| p.starts_with(&prefix_dir)), "{stored:?}");
}

fn credentials_json() -> String {
    format!(
        r#"{{"Code":"Success","AccessKeyId":"{S3_KEY}","SecretAccessKey":"{S3_SECRET}","Token":"session-token","Expiration":"2099-01-01T00:00:00Z"}}"#
    )
}

#[test]
fn credentials_from_the_instance_metadata_service_are_kept_for_later_compiles() {
    let server = s3s(true, &[BUCKET]);
    let (imds, seen) = http_endpoint(|req| match (req.method.as_str(), req.path.as_str()) {
        ("PUT", "/latest/api/token") => (200, "imds-session".into()),
        (_, p)
            if !req
                .headers
                .iter()
                .any(|(k, v)| k == "x-aws-ec2-metadata-token" && v == "imds-session") =>
        {
            (401, format!("no token for {p}"))
        }
        ("GET", "/latest/meta-data/iam/security-credentials/") => (200, "build-role".into()),
        ("GET", "/latest/meta-data/iam/security-credentials/build-role") => (200, credentials_json()),
        _ => (404, String::new()),
    });
    let mut env = env_with("s3-imds", &server, BUCKET);
    env.set("AWS_EC2_METADATA_DISABLED", "");
    env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://127.0.0.1:{imds}"));
    let files = write_project(&env.dir, 3);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(other(&env, "remote.write"), 3 * PER_COMPILE, "{}", env.stats());
    assert_eq!(env.stat("errors"), 0);
    // Three requests for the first compile; the others used the kept credentials.
    assert_eq!(seen.lock().unwrap().len(), 3, "{:?}", seen.lock().unwrap());
    let kept = env.cache.join("remote-aws-credentials");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);
    let shown = s(&env.ok(&["--show-config"]).stdout) + &s(&env.ok(&["--show-stats"]).stdout);
    assert!(
        !shown.contains(S3_SECRET) && !shown.contains("session-token"),
        "{shown}"
    );
}

#[test]
fn no_metadata_service_means_anonymous_reads_and_no_writes() {
    // A bucket that anyone may read: s3s-fs without credentials, seeded with entries built on
    // machine A (copied, as `aws s3 sync` would).
    let server = s3s(false, &[BUCKET]);
    let a = Env::new("s3-anon-a");
    let files = write_project(&a.dir, 2);
    let objects = build(&a, &files[..1]);
    for (key, path) in local_entries(&a.cache) {
        std::fs::copy(path, server.dir.join("root").join(BUCKET).join(key)).unwrap();
    }
    assert_eq!(objects_in(&server, BUCKET).len() as u64, PER_COMPILE);
    // B has no credentials at all, and the metadata endpoint refuses connections.
    let mut b = env_with("s3-anon-b", &server, BUCKET);
    b.set("AWS_EC2_METADATA_DISABLED", "");
    b.set(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://127.0.0.1:{}", free_port()),
    );
    write_project(&b.dir, 2);
    let built = build(&b, &files);
    assert_eq!(built[0], objects[0]);
    assert_eq!(b.stat("hits"), 1, "{}", b.stats());
    assert_eq!(b.stat("misses"), 1);
    assert_eq!(other(&b, "remote.write"), 0);
    assert_eq!(other(&b, "remote.write-skipped-read-only"), PER_COMPILE);
    assert_eq!(b.stat("errors"), 0);
    assert_eq!(objects_in(&server, BUCKET).len() as u64, PER_COMPILE);
}

#[test]
fn credentials_from_an_iam_credentials_url() {
    let server = s3s(true, &[BUCKET]);
    let (port, seen) = http_endpoint(|req| match req.path.as_str() {
        "/creds" => (200, credentials_json()),
        _ => (404, String::new()),
    });
    let mut env = env_with("s3-iam-url", &server, BUCKET);
    env.set("AWS_IAM_CREDENTIALS_URL", format!("http://127.0.0.1:{port}/creds"));
    let files = write_project(&env.dir, 2);
    build(&env, &files);
    assert_eq!(other(&env, "remote.write"), 2 * PER_COMPILE, "{}", env.stats());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn credentials_from_a_web_identity_token() {
    let server = s3s(true, &[BUCKET]);
    let (port, seen) = http_endpoint(|req| {
        let ok = req.path.contains("Action=AssumeRoleWithWebIdentity")
            && req.path.contains("WebIdentityToken=oidc-token-from-ci")
            && req.path.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123%3Arole%2Fci");
        if !ok {
            return (400, format!("unexpected {}", req.path));
        }
        (
            200,
            format!(
                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{S3_KEY}</AccessKeyId><SecretAccessKey>{S3_SECRET}</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
            ),
        )
    });
    let mut env = env_with("s3-web-identity", &server, BUCKET);
    let token = env.dir.write("oidc-token", "oidc-token-from-ci\n");
    env.set("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap());
    env.set("AWS_ROLE_ARN", "arn:aws:iam::123:role/ci");
    env.set("AWS_ENDPOINT_URL_STS", format!("http://127.0.0.1:{port}"));
    let files = write_project(&env.dir, 2);
    build(&env, &files);
    assert_eq!(other(&env, "remote.write"), 2 * PER_COMPILE, "{}", env.stats());
    assert_eq!(env.stat("errors"), 0);
    assert_eq!(seen.lock().unwrap().len(), 1, "{:?}", seen.lock().unwrap());
}

#[test]
fn a_refused_web_identity_is_an_auth_error() {
    let server = s3s(true, &[BUCKET]);
    let (port, _) = http_endpoint(|_| {
        (
            403,
            "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>".into(),
        )
    });
    let mut env = env_with("s3-web-identity-refused", &server, BUCKET);
    let token = env.dir.write("oidc-token", "expired");
    env.set("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap());
    env.set("AWS_ROLE_ARN", "arn:aws:iam::123:role/ci");
    env.set("AWS_ENDPOINT_URL_STS", format!("http://127.0.0.1:{port}"));
    let files = write_project(&env.dir, 1);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_auth"), 1, "{}", env.stats());
}
