//! BuildGrid (`bgd`, from the Python package index; .ci/setup-remote.sh installs it) for the REAPI
//! tests: a server on a free loopback port with its CAS and Action Cache in memory, optionally with
//! TLS or JWT checks, or with remote execution (its scheduler needs PostgreSQL: a private cluster
//! in the test's directory) and test workers (tests/data/reapi_worker.py, BuildGrid's bots API).
#![allow(dead_code)]

use crate::common::*;
use crate::remote_support::*;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a BuildGrid server checks: nothing, a TLS client certificate, or a JWT bearer token.
#[derive(Default)]
pub struct Options<'a> {
    pub tls: Option<&'a TlsFiles>,
    pub client_ca: Option<&'a std::path::Path>,
    pub jwt_secret: Option<&'a str>,
    /// Remote execution: the scheduler's database.
    pub execution: Option<&'a Postgres>,
}

/// `bgd server start` on a free loopback port, CAS and Action Cache in memory, instance "".
pub fn buildgrid(o: Options) -> Server {
    let bin = require_tool("bgd");
    let dir = TestDir::new("buildgrid");
    let port = free_port();
    let mut channel = format!("  - !channel\n    address: \"127.0.0.1:{port}\"\n");
    match o.tls {
        None => channel.push_str("    insecure-mode: true\n"),
        Some(t) => {
            channel.push_str(&format!(
                "    insecure-mode: false\n    credentials:\n      tls-server-key: {}\n      tls-server-cert: {}\n",
                t.key.display(),
                t.cert.display()
            ));
            if let Some(ca) = o.client_ca {
                channel.push_str(&format!("      tls-client-certs: {}\n", ca.display()));
            }
        }
    }
    let auth = match o.jwt_secret {
        None => String::new(),
        Some(secret) => {
            let file = dir.write("jwt.secret", secret);
            format!(
                "authorization:\n  method: jwt\n  secret: {}\n  algorithm: hs256\n  allow-localhost-requests: false\n",
                file.display()
            )
        }
    };
    let (connections, schedulers, services) = match o.execution {
        None => Default::default(),
        Some(pg) => (
            format!("connections:\n  - !sql-connection &sql\n    connection-string: {}\n", pg.url),
            // cachepot names the toolchain in a platform property; these workers all have it.
            // Queued jobs are assigned every 20 ms (the default, 1 s, would be most of each compile).
            "schedulers:\n  - !sql-scheduler &sched\n    sql: *sql\n    storage: *cas\n    action-cache: *ac\n    poll-interval: 0.05\n    property-set: !dynamic-property-set\n      wildcard-property-keys: [cachepot-toolchain]\n    assigners:\n      - !priority-age-assigner\n        interval: 0.02\n".to_string(),
            "      - !execution\n        scheduler: *sched\n      - !bots\n        scheduler: *sched\n".to_string(),
        ),
    };
    let config = format!(
        "server:\n{channel}thread-pool-size: 100\n{auth}{connections}storages:\n  - !lru-storage &cas\n    size: 512MB\ncaches:\n  - !lru-action-cache &ac\n    storage: *cas\n    max-cached-refs: 100000\n    allow-updates: true\n{schedulers}instances:\n  - name: \"\"\n    services:\n      - !action-cache\n        cache: *ac\n      - !cas\n        storage: *cas\n      - !bytestream\n        storage: *cas\n{services}"
    );
    dir.write("bgd.yml", &config);
    let log = std::fs::File::create(dir.join("bgd.log")).unwrap();
    let mut child = Command::new(bin)
        .args(["server", "start", "bgd.yml"])
        .current_dir(&dir.path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start bgd");
    // A Python server: its imports take seconds on a busy machine.
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("bgd exited at start-up: {status}\n{}", s(&dir.read("bgd.log")));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "bgd did not listen on port {port}:\n{}",
            s(&dir.read("bgd.log"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child: Some(child),
        port,
        dir,
    }
}

pub fn env_with(name: &str, server: &Server, scheme: &str) -> Env {
    let mut env = Env::new(name);
    env.set("CACHEPOT_REAPI", format!("{scheme}://127.0.0.1:{}", server.port));
    env
}

/// The Python of the BuildGrid install (its `bgd` script's interpreter), with its protos and grpc.
pub fn buildgrid_python() -> std::path::PathBuf {
    let bgd = std::fs::canonicalize(require_tool("bgd")).unwrap();
    bgd.parent().unwrap().join("python3")
}

/// A private PostgreSQL cluster (BuildGrid's scheduler needs one) on a free loopback port, with
/// BuildGrid's schema; stopped when dropped. PostgreSQL refuses to run as root: as root, its
/// programs run as the `postgres` user (Debian's package makes it).
pub struct Postgres {
    pub url: String,
    data: PathBuf,
    bin: PathBuf,
    _dir: TestDir,
}

fn as_postgres(program: &Path) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub fn postgres() -> Postgres {
    // Debian keeps initdb and pg_ctl off PATH, under /usr/lib/postgresql/<version>/bin.
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|b| b.join("initdb").is_file());
    found.sort();
    let bin = found
        .pop()
        .unwrap_or_else(|| panic!("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); run .ci/run (Debian: apt-get install postgresql)"));
    let dir = TestDir::new("postgres");
    if unsafe { libc::geteuid() } == 0 {
        let out = Command::new("id").args(["-u", "postgres"]).output().unwrap();
        let uid: u32 = s(&out.stdout)
            .trim()
            .parse()
            .expect("a postgres user (Debian's postgresql package makes it)");
        std::os::unix::fs::chown(&dir.path, Some(uid), None).unwrap();
    }
    let data = dir.join("data");
    let out = as_postgres(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "bgd"])
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb: {}", s(&out.stderr));
    let port = free_port();
    let out = as_postgres(&bin.join("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .arg("-o")
        .arg(format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path.display()
        ))
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-w", "start"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_ctl start: {}{}",
        s(&out.stdout),
        s(&out.stderr)
    );
    let url = format!("postgresql+psycopg2://bgd@127.0.0.1:{port}/postgres");
    let out = Command::new(require_tool("bgd"))
        .args(["migrate", "apply", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "bgd migrate apply: {}", s(&out.stderr));
    Postgres {
        url,
        data,
        bin,
        _dir: dir,
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Test workers taking leases from `server` (tests/data/reapi_worker.py); killed when dropped.
pub struct Workers(Vec<Child>);

impl Workers {
    pub fn kill(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.0.clear();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn workers(server: &Server, n: usize) -> Workers {
    workers_without(server, n, &[])
}

/// Workers whose commands do not see `hidden` (a worker image without the host's compiler).
pub fn workers_without(server: &Server, n: usize, hidden: &[PathBuf]) -> Workers {
    let hide = hidden.iter().map(|p| p.to_str().unwrap()).collect::<Vec<_>>().join(":");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reapi_worker.py");
    Workers(
        (0..n)
            .map(|i| {
                let log = std::fs::File::create(server.dir.join(format!("worker{i}.log"))).unwrap();
                Command::new(buildgrid_python())
                    .arg(&script)
                    .arg(format!("127.0.0.1:{}", server.port))
                    .arg(format!("worker-{i}"))
                    .env("REAPI_WORKER_HIDE", &hide)
                    .env("REAPI_WORKER_CACHE", server.dir.join(format!("worker{i}-cache")))
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start a test worker")
            })
            .collect(),
    )
}
