//! Azure Blob Storage as the shared cache, against Azurite on loopback (which checks Shared Key
//! signatures, so a wrong account key is a real failure).
mod common;
mod remote_support;
use common::*;
use remote_support::*;

const CONTAINER: &str = "build-cache";

fn env_with(name: &str, server: &Server, container: &str) -> Env {
    let mut env = Env::new(name);
    env.set(
        "CACHEPOT_AZURE_CONNECTION_STRING",
        azurite_connection_string(server, AZURITE_KEY),
    );
    env.set("CACHEPOT_AZURE_BLOB_CONTAINER", container);
    env
}

fn azurite_with_container() -> Server {
    let server = azurite();
    let (status, body) = azurite_request(&server, "PUT", &format!("{CONTAINER}?restype=container"), b"");
    assert_eq!(status, 201, "create container: {}", s(&body));
    server
}

#[test]
fn one_machine_fills_the_container_another_gets_every_object_from_it() {
    let server = azurite_with_container();
    let a = env_with("az-a", &server, CONTAINER);
    let files = write_project(&a.dir, 4);
    let objects = build(&a, &files);
    assert_eq!(objects, reference_objects(&a, &files));
    assert_eq!(other(&a, "remote.write"), 4 * PER_COMPILE, "{}", a.stats());
    assert_eq!(azurite_blobs(&server, CONTAINER).len() as u64, 4 * PER_COMPILE);
    let b = env_with("az-b", &server, CONTAINER);
    write_project(&b.dir, 4);
    assert_eq!(build(&b, &files), objects);
    assert_eq!(b.stat("hits"), 4, "{}", b.stats());
    assert_eq!(other(&b, "remote.hit"), 4 * PER_COMPILE);
    assert_eq!(b.stat("errors"), 0);
}

#[test]
fn missing_container_is_one_clear_log_line_and_a_counted_error() {
    let server = azurite_with_container();
    let mut env = env_with("az-nocontainer", &server, "no-such-container");
    let log = env.dir.join("cachepot.log");
    env.set("CACHEPOT_ERROR_LOG", log.to_str().unwrap());
    let files = write_project(&env.dir, 3);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_missing_bucket"), 1, "{}", env.stats());
    assert_eq!(other(&env, "remote.skipped-backoff"), 2);
    let text = s(&std::fs::read(&log).unwrap());
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("no-such-container")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("does not exist"), "{text}");
    assert!(!text.contains(AZURITE_KEY), "{text}");
}

#[test]
fn wrong_account_key_is_an_auth_error() {
    let server = azurite_with_container();
    let mut env = env_with("az-wrongkey", &server, CONTAINER);
    env.set(
        "CACHEPOT_AZURE_CONNECTION_STRING",
        azurite_connection_string(&server, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="),
    );
    let files = write_project(&env.dir, 2);
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_auth"), 1, "{}", env.stats());
    let shown = s(&env.ok(&["--show-config"]).stdout);
    assert!(shown.contains("AccountKey=****"), "{shown}");
    assert!(!shown.contains("d3Jvbmct"), "{shown}");
}

#[test]
fn damaged_blob_is_rejected_and_replaced() {
    let server = azurite_with_container();
    let a = env_with("az-damage-a", &server, CONTAINER);
    let files = write_project(&a.dir, 1);
    let good = build(&a, &files);
    let blobs = azurite_blobs(&server, CONTAINER);
    for blob in &blobs {
        let (status, _) = azurite_request(&server, "PUT", &format!("{CONTAINER}/{blob}"), b"garbage");
        assert_eq!(status, 201);
    }
    let b = env_with("az-damage-b", &server, CONTAINER);
    write_project(&b.dir, 1);
    assert_eq!(build(&b, &files), good);
    assert_eq!(b.error_kind("corrupt_entry"), 1, "{}", b.stats());
    let c = env_with("az-damage-c", &server, CONTAINER);
    write_project(&c.dir, 1);
    assert_eq!(build(&c, &files), good);
    assert_eq!(c.stat("hits"), 1, "{}", c.stats());
}

#[test]
fn server_killed_or_silent() {
    let mut server = azurite_with_container();
    let env = env_with("az-killed", &server, CONTAINER);
    let files = write_project(&env.dir, 3);
    build(&env, &files[..1]);
    server.kill();
    assert_eq!(build(&env, &files), reference_objects(&env, &files));
    assert_eq!(env.error_kind("remote_unreachable"), 1, "{}", env.stats());

    let mut silent = Env::new("az-silent");
    silent.set(
        "CACHEPOT_AZURE_CONNECTION_STRING",
        format!(
            "AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{}/{AZURITE_ACCOUNT}",
            silent_server()
        ),
    );
    silent.set("CACHEPOT_AZURE_BLOB_CONTAINER", CONTAINER);
    silent.set("CACHEPOT_REMOTE_TIMEOUT", "300ms");
    write_project(&silent.dir, 2);
    assert_eq!(build(&silent, &files[..2]), reference_objects(&silent, &files[..2]));
    assert_eq!(silent.error_kind("remote_timeout"), 1, "{}", silent.stats());
}
