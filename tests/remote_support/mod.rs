//! Real servers for the remote-store tests, each on a free loopback port, stopped when dropped:
//! redis-server (plain and TLS), memcached, and a "silent" server that accepts connections and never
//! answers (a real server-side behaviour: a hung process or a black-holed proxy).
#![allow(dead_code)]

use crate::common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process we started; killed (by its own handle) when dropped.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: TestDir,
}

impl Server {
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start-up: {status}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not start listening on port {port}");
}

/// TLS material for a test: a CA, and a server certificate for 127.0.0.1 signed by it.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_tls_files(dir: &Path) -> TlsFiles {
    require_tool("openssl");
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", s(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=cachepot test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// redis-server on a free port, no persistence; `extra` adds arguments (e.g. `--requirepass x`).
pub fn redis(extra: &[&str]) -> Server {
    let bin = require_tool("redis-server");
    let dir = TestDir::new("redis-server");
    let port = free_port();
    let mut child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--dir", dir.path.to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    wait_for_port(port, &mut child, "redis-server");
    Server {
        child: Some(child),
        port,
        dir,
    }
}

/// redis-server speaking only TLS, with the given certificate.
pub fn redis_tls(tls: &TlsFiles) -> Server {
    let bin = require_tool("redis-server");
    let dir = TestDir::new("redis-tls");
    let port = free_port();
    let mut child = Command::new(bin)
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--tls-auth-clients", "no"])
        .args(["--tls-cert-file", tls.cert.to_str().unwrap()])
        .args(["--tls-key-file", tls.key.to_str().unwrap()])
        .args(["--tls-ca-cert-file", tls.ca.to_str().unwrap()])
        .args(["--dir", dir.path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server with TLS");
    wait_for_port(port, &mut child, "redis-server (TLS)");
    Server {
        child: Some(child),
        port,
        dir,
    }
}

/// memcached on a free port; `extra` adds arguments (e.g. `-I 2m`).
pub fn memcached(extra: &[&str]) -> Server {
    let bin = require_tool("memcached");
    let dir = TestDir::new("memcached");
    let port = free_port();
    let mut child = Command::new(bin)
        .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-u", "root"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start memcached");
    wait_for_port(port, &mut child, "memcached");
    Server {
        child: Some(child),
        port,
        dir,
    }
}

/// A server that accepts connections, reads what it is sent, and never answers. Runs until the
/// test process ends.
pub fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
                let _ = conn.flush();
            });
        }
    });
    port
}

/// A small C project: `n` files whose objects differ.
pub fn write_project(dir: &TestDir, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("f{i}.c");
            dir.write(
                &name,
                format!("#include <stdio.h>\nint f{i}(int x) {{ printf(\"%d\\n\", x); return x * {i} + 1; }}\n"),
            );
            name
        })
        .collect()
}

/// Compile every file through cachepot in `env`; returns the objects' bytes.
pub fn build(env: &Env, files: &[String]) -> Vec<Vec<u8>> {
    files
        .iter()
        .map(|f| {
            let obj = f.replace(".c", ".o");
            let _ = std::fs::remove_file(env.dir.join(&obj));
            env.ok(&["gcc", "-c", f, "-o", &obj, "-O1"]);
            env.dir.read(&obj)
        })
        .collect()
}

/// The objects the real compiler makes without any cache, for comparison.
pub fn reference_objects(env: &Env, files: &[String]) -> Vec<Vec<u8>> {
    let gcc = require_tool("gcc");
    files
        .iter()
        .map(|f| {
            let obj = format!("{}.ref.o", f);
            let out = Command::new(&gcc)
                .args(["-c", f, "-o", &obj, "-O1"])
                .current_dir(&env.dir.path)
                .output()
                .unwrap();
            assert!(out.status.success(), "gcc {f}: {}", s(&out.stderr));
            env.dir.read(&obj)
        })
        .collect()
}

/// An `other` counter of the statistics (remote.hit, remote.write, …), 0 when absent.
pub fn other(env: &Env, name: &str) -> u64 {
    env.stats()["other"][name].as_u64().unwrap_or(0)
}

pub const S3_KEY: &str = "cachepot-test-key";
pub const S3_SECRET: &str = "cachepot-test-secret-0123456789";

/// s3s-fs on a free port, serving `<dir>/root`; with credentials it checks SigV4 signatures.
pub fn s3s(auth: bool, buckets: &[&str]) -> Server {
    let bin = require_tool("s3s-fs");
    let dir = TestDir::new("s3s");
    let root = dir.join("root");
    for b in buckets {
        std::fs::create_dir_all(root.join(b)).unwrap();
    }
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
    if auth {
        cmd.args(["--access-key", S3_KEY, "--secret-key", S3_SECRET]);
    }
    let mut child = cmd
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start s3s-fs");
    wait_for_port(port, &mut child, "s3s-fs");
    Server {
        child: Some(child),
        port,
        dir,
    }
}

/// One request as the test's own HTTP endpoint saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The test's own HTTP endpoint on loopback (a token or credentials service, which the code under
/// test reaches through its documented endpoint overrides): `answer` gives status and body for
/// each request. Returns the port and the log of requests seen.
pub fn http_endpoint(
    answer: impl Fn(&SeenRequest) -> (u16, String) + Send + Sync + 'static,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>) {
    use std::io::BufRead;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let answer = answer.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_string();
                    let path = parts.next().unwrap_or_default().to_string();
                    let mut headers = Vec::new();
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let req = SeenRequest {
                        method,
                        path,
                        headers,
                        body,
                    };
                    let (status, body) = answer(&req);
                    log.lock().unwrap().push(req);
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, in Azurite's documentation).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service on a free port, storing under its own temp dir.
pub fn azurite() -> Server {
    let bin = require_tool("azurite-blob");
    let dir = TestDir::new("azurite");
    let port = free_port();
    let mut child = Command::new(bin)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--silent",
            "--skipApiVersionCheck",
        ])
        .args(["--location", dir.path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start azurite-blob");
    wait_for_port(port, &mut child, "azurite-blob");
    Server {
        child: Some(child),
        port,
        dir,
    }
}

pub fn azurite_connection_string(server: &Server, key: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};BlobEndpoint=http://127.0.0.1:{}/{AZURITE_ACCOUNT};",
        server.port
    )
}

/// An administrator's request to Azurite (create a container, list or overwrite blobs), signed
/// with Shared Key here in the test, as the Azure CLI would. Returns status and body.
pub fn azurite_request(server: &Server, verb: &str, path_and_query: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let url = format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}/{path_and_query}", server.port);
    let parsed = url::Url::parse(&url).unwrap();
    let date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let mut resource = format!("/{AZURITE_ACCOUNT}{}", parsed.path());
    let mut query: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
        .collect();
    query.sort();
    for (k, v) in &query {
        resource.push_str(&format!("\n{k}:{v}"));
    }
    let blob_type = if verb == "PUT" && !path_and_query.contains("restype=container") {
        "x-ms-blob-type:BlockBlob\n"
    } else {
        ""
    };
    let length = if body.is_empty() {
        String::new()
    } else {
        body.len().to_string()
    };
    let to_sign = format!(
        "{verb}\n\n\n{length}\n\n\n\n\n\n\n\n\n{blob_type}x-ms-date:{date}\nx-ms-version:2021-12-02\n{resource}"
    );
    let key = base64::engine::general_purpose::STANDARD.decode(AZURITE_KEY).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = ureq::http::Request::builder()
        .method(verb)
        .uri(&url)
        .header("x-ms-date", &date)
        .header("x-ms-version", "2021-12-02")
        .header("Authorization", format!("SharedKey {AZURITE_ACCOUNT}:{sig}"));
    if !blob_type.is_empty() {
        req = req.header("x-ms-blob-type", "BlockBlob");
    }
    let mut resp = agent.run(req.body(body.to_vec()).unwrap()).unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_vec().unwrap())
}

/// The blob names in a container (from the List Blobs answer).
pub fn azurite_blobs(server: &Server, container: &str) -> Vec<String> {
    let (status, body) = azurite_request(server, "GET", &format!("{container}?restype=container&comp=list"), b"");
    assert_eq!(status, 200, "{}", s(&body));
    let text = s(&body);
    text.split("<Name>")
        .skip(1)
        .map(|p| p.split("</Name>").next().unwrap().to_string())
        .collect()
}

/// gcp-storage-emulator on a free port, in memory, with `bucket` created.
pub fn gcs_emulator(bucket: &str) -> Server {
    let bin = require_tool("gcp-storage-emulator");
    let dir = TestDir::new("gcs");
    let port = free_port();
    let mut child = Command::new(bin)
        .args([
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--in-memory",
            "-q",
        ])
        .args(["--default-bucket", bucket])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gcp-storage-emulator");
    wait_for_port(port, &mut child, "gcp-storage-emulator");
    Server {
        child: Some(child),
        port,
        dir,
    }
}

/// A service-account key file (a fresh RSA key from openssl) whose token_uri is `token_uri`;
/// returns the key file and the public key (PEM) to verify signatures with.
pub fn service_account_key(dir: &TestDir, token_uri: &str) -> (PathBuf, PathBuf) {
    require_tool("openssl");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", s(&out.stderr));
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "sa.pem",
    ]);
    run(&["pkey", "-in", "sa.pem", "-pubout", "-out", "sa.pub.pem"]);
    let pem = s(&dir.read("sa.pem")).replace('\n', "\\n");
    let json = format!(
        "{{\"type\":\"service_account\",\"client_email\":\"builder@test.iam.gserviceaccount.com\",\"private_key\":\"{pem}\",\"token_uri\":\"{token_uri}\"}}"
    );
    (dir.write("sa.json", json), dir.join("sa.pub.pem"))
}

/// Check a JWT's RS256 signature with openssl and the public key; returns its claims (JSON).
pub fn verify_jwt(dir: &TestDir, jwt: &str, public_key: &Path) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {jwt}");
    dir.write("jwt.input", format!("{}.{}", parts[0], parts[1]));
    dir.write("jwt.sig", b64.decode(parts[2]).unwrap());
    let out = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            public_key.to_str().unwrap(),
            "-signature",
            "jwt.sig",
            "jwt.input",
        ])
        .current_dir(&dir.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "JWT signature does not verify: {}{}",
        s(&out.stdout),
        s(&out.stderr)
    );
    s(&b64.decode(parts[1]).unwrap())
}

/// Objects one cached compile stores: in direct mode (the default) a manifest and a result entry.
pub const PER_COMPILE: u64 = 2;

/// Every stored object (entry or manifest) of a local cache dir, from its `<h>/<h>/<key>` fan-out
/// directories: (key, path).
pub fn local_entries(cache: &Path) -> Vec<(String, PathBuf)> {
    let is_fan = |p: &Path| {
        p.is_dir()
            && p.file_name()
                .map(|n| n.len() == 1 && n.to_string_lossy().chars().all(|c| c.is_ascii_hexdigit()))
                .unwrap_or(false)
    };
    let mut found = Vec::new();
    for top in std::fs::read_dir(cache).unwrap() {
        let top = top.unwrap().path();
        if !is_fan(&top) {
            continue;
        }
        for sub in std::fs::read_dir(&top).unwrap() {
            let sub = sub.unwrap().path();
            if !is_fan(&sub) {
                continue;
            }
            for f in std::fs::read_dir(&sub).unwrap() {
                let f = f.unwrap();
                let name = f.file_name().to_string_lossy().into_owned();
                if f.file_type().unwrap().is_file() && !name.starts_with('.') {
                    found.push((name, f.path()));
                }
            }
        }
    }
    found.sort();
    found
}
