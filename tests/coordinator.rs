//! The coordinator (src/coordinator/): start, stop and idle exit; the same statistics with and
//! without it; machine-wide compile slots across three `make -j8` builds; a `+` recipe under a
//! real make jobserver; slots freed when a client is SIGKILLed; another user kept out; garbage on
//! the socket. Compiler processes are counted by a wrapper script placed as the real compiler
//! (via CACHEPOT_PATH) that records when each run starts and ends.
mod common;
use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An Env whose coordinator lives in its own runtime dir, stopped when the test ends.
struct Coord {
    env: Env,
}

impl Coord {
    fn new(name: &str) -> Coord {
        let mut env = Env::new(name);
        let run = env.dir.join("run");
        env.set("XDG_RUNTIME_DIR", run.to_str().unwrap());
        // A leaked coordinator (a test that panicked before Drop) goes away by itself.
        env.set("CACHEPOT_IDLE_TIMEOUT", "120");
        Coord { env }
    }

    fn sock(&self) -> PathBuf {
        self.env.dir.join("run/cachepot/sock")
    }

    fn start(&self) -> String {
        s(&self.env.ok(&["--start-coordinator"]).stdout)
    }

    /// The coordinator's live figures from `--show-stats --json`, or None when not running.
    fn figures(&self) -> Option<serde_json::Value> {
        let c = self.env.stats()["coordinator"].clone();
        c["running"].as_bool().unwrap().then_some(c)
    }

    fn figure(&self, name: &str) -> u64 {
        let f = self.figures().expect("coordinator running");
        f[name].as_u64().unwrap_or_else(|| panic!("no figure {name} in {f}"))
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut(&Coord) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Coord {
    fn drop(&mut self) {
        let _ = self.env.cachepot(&["--stop-coordinator"]);
    }
}

/// A `gcc` wrapper script that logs `start <ns> <pid>` / `end <ns> <pid>` around the real gcc,
/// plus whether it saw an open jobserver. `SLEEP_MS` slows each run down so runs overlap.
fn wrapper(env: &Env, sleep_s: &str) -> (PathBuf, PathBuf) {
    let gcc = require_tool("gcc");
    let dir = env.dir.join("fake-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let log = env.dir.join("compiler-runs.log");
    let script = format!(
        r#"#!/bin/sh
echo "start $(date +%s%N) $$ $*" >> '{log}'
js=none
for w in $MAKEFLAGS; do
  case "$w" in
    --jobserver-auth=fifo:*) if [ -p "${{w#--jobserver-auth=fifo:}}" ]; then js=open; else js=closed; fi;;
    --jobserver-auth=*) fds=${{w#--jobserver-auth=}}; r=${{fds%,*}}
      if [ -e /proc/$$/fd/$r ]; then js=open; else js=closed; fi;;
  esac
done
echo "jobserver $js $$" >> '{log}'
'{gcc}' "$@"
rc=$?
case " $* " in *" -E "*) ;; *slow.c*) echo "sleeping $$" >> '{log}'; sleep 30;; esac
sleep {sleep_s}
echo "end $(date +%s%N) $$" >> '{log}'
exit $rc
"#,
        log = log.display(),
        gcc = gcc.display(),
    );
    let path = dir.join("gcc");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, log)
}

/// The most compiler runs alive at once, from the wrapper's log, and how many runs there were.
fn max_overlap(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut events: Vec<(u128, i32)> = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["start", t, ..] => events.push((t.parse().unwrap(), 1)),
            ["end", t, _] => events.push((t.parse().unwrap(), -1)),
            _ => {}
        }
    }
    // Ends before starts at the same instant.
    events.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in &events {
        now += d;
        max = max.max(now);
    }
    (max as usize, events.iter().filter(|e| e.1 == 1).count())
}

/// Sources for a compile-only project of `n` files, with rules from `rules` (a Makefile body
/// using $(CP) for `cachepot`).
fn project(root: &Path, prefix: &str, n: usize) -> Vec<String> {
    std::fs::create_dir_all(root).unwrap();
    (0..n)
        .map(|i| {
            std::fs::write(
                root.join(format!("{prefix}{i}.c")),
                format!(
                    "const char *{prefix}{i}_from = \"{}\";\nint {prefix}{i}(int x) {{ return x * {i}; }}\n",
                    root.display()
                ),
            )
            .unwrap();
            format!("{prefix}{i}.o")
        })
        .collect()
}

fn wait_with_timeout(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not finish within {limit:?} (deadlock?):\n{}{}",
                s(&out.stdout),
                s(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn start_stop_foreground_and_idle_timeout() {
    let c = Coord::new("coord-startstop");
    assert!(c.figures().is_none());
    let out = c.start();
    assert!(out.starts_with("coordinator started (pid "), "{out}");
    assert!(c.start().starts_with("coordinator already running"), "second start");
    let dir = c.sock().parent().unwrap().to_path_buf();
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(c.figure("slots_in_use"), 0);
    let out = s(&c.env.ok(&["--stop-coordinator"]).stdout);
    assert_eq!(out.trim(), "coordinator stopped");
    assert!(c.figures().is_none());
    assert!(!c.sock().exists(), "socket removed on exit");
    let out = s(&c.env.ok(&["--stop-coordinator"]).stdout);
    assert_eq!(out.trim(), "no coordinator was running");

    // The seed's spelling and --start-coordinator --foreground run it here, logging to stderr.
    for spelling in [&[][..], &["--start-coordinator", "--foreground"][..]] {
        let mut cmd = c.env.cmd(cachepot_bin());
        cmd.args(spelling).stdout(Stdio::piped()).stderr(Stdio::piped());
        if spelling.is_empty() {
            cmd.env("CACHEPOT_START_SERVER", "1").env("CACHEPOT_NO_DAEMON", "1");
        }
        let child = cmd.spawn().unwrap();
        c.wait_for("foreground coordinator answers", |c| c.figures().is_some());
        c.env.ok(&["--stop-coordinator"]);
        let out = wait_with_timeout(child, Duration::from_secs(20), "foreground coordinator");
        assert!(out.status.success(), "{:?}", out.status);
        assert!(
            s(&out.stderr).contains("listening on"),
            "logs on stderr: {}",
            s(&out.stderr)
        );
    }

    // Idle exit: nothing connects (a status query would count as activity), so watch the socket.
    let mut c2 = Coord::new("coord-idle");
    c2.env.set("CACHEPOT_IDLE_TIMEOUT", "1");
    c2.start();
    assert!(c2.sock().exists());
    let deadline = Instant::now() + Duration::from_secs(30);
    while c2.sock().exists() {
        assert!(Instant::now() < deadline, "coordinator did not exit after 1 s idle");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c2.figures().is_none());
}

/// The same calls give the same statistics and the same objects with the coordinator off and on.
#[test]
fn stats_agree_with_and_without_coordinator() {
    require_tool("gcc");
    let run = |c: &Coord| {
        c.env.dir.write("a.c", "int a(void) { return 1; }\n");
        c.env.dir.write("bad.c", "int b(void) { return }\n");
        c.env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
        c.env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
        assert!(!c.env.cachepot(&["gcc", "-c", "bad.c", "-o", "bad.o"]).status.success());
        c.env.ok(&["gcc", "-E", "a.c", "-o", "a.i"]);
        (c.env.stats(), c.env.dir.read("a.o"))
    };
    let off = Coord::new("coord-stats-off");
    let (stats_off, obj_off) = run(&off);
    assert!(stats_off["coordinator"]["running"] == false);

    let mut on = Coord::new("coord-stats-on");
    on.env.set("CACHEPOT_COORDINATOR", "auto");
    on.start();
    let (stats_on, obj_on) = run(&on);
    for k in [
        "requests",
        "hits",
        "hits_preprocessed",
        "misses",
        "not_cacheable",
        "not_cacheable_reasons",
        "errors",
        "error_kinds",
        "other",
        "entries",
    ] {
        assert_eq!(stats_off[k], stats_on[k], "{k}: off {stats_off} on {stats_on}");
    }
    assert_eq!(obj_off, obj_on);
    assert_eq!(stats_on["hits"], 1);
    assert_eq!(stats_on["misses"], 1);
    // At least the two real compiles (a.c, bad.c) took a slot, and none is left in use.
    assert!(
        stats_on["coordinator"]["slots_granted"].as_u64().unwrap() >= 2,
        "{stats_on}"
    );
    assert_eq!(stats_on["coordinator"]["slots_in_use"], 0);
    // A direct-mode hit takes no slot.
    let before = on.figure("slots_granted");
    on.env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    assert_eq!(on.env.stat("hits_direct"), 2);
    assert_eq!(on.figure("slots_granted"), before, "a hit took a slot");
}

/// With `auto`, a compile call starts the coordinator in the background without waiting for it,
/// and compiles still work after the coordinator is killed.
#[test]
fn auto_starts_on_demand_and_survives_its_death() {
    require_tool("gcc");
    let mut c = Coord::new("coord-auto");
    c.env.set("CACHEPOT_COORDINATOR", "auto");
    c.env.dir.write("a.c", "int a(void) { return 1; }\n");
    c.env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    c.wait_for("the coordinator started by a compile call", |c| c.figures().is_some());
    let pid = c.figure("pid") as i32;
    // SAFETY: kill(2) on the coordinator this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    c.wait_for("the coordinator to die", |c| c.figures().is_none());
    c.env.dir.write("b.c", "int b(void) { return 2; }\n");
    c.env.ok(&["gcc", "-c", "b.c", "-o", "b.o"]);
    c.env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    let st = c.env.stats();
    assert_eq!((st["misses"].as_u64(), st["hits"].as_u64()), (Some(2), Some(1)), "{st}");
    assert_eq!(st["errors"], 0, "{st}");
    // … and the next compile call started a new one.
    c.wait_for("a new coordinator", |c| c.figures().is_some_and(|f| f["pid"] != pid));
}

/// Three `make -j8` builds at once with a 4-slot coordinator never run more than 4 compilers.
#[test]
fn three_make_j8_builds_never_exceed_four_compilers() {
    require_tool("make");
    let mut c = Coord::new("coord-3make");
    c.env.set("CACHEPOT_COORDINATOR", "auto");
    c.env.set("CACHEPOT_JOBS", "4");
    let (fake, log) = wrapper(&c.env, "0.2");
    c.env.set("CACHEPOT_PATH", fake.to_str().unwrap());
    c.start();
    assert_eq!(c.figure("slots"), 4);
    let builds: Vec<Child> = ["p1", "p2", "p3"]
        .iter()
        .map(|name| {
            let root = c.env.dir.join(name);
            let objs = project(&root, "f", 10);
            std::fs::write(
                root.join("Makefile"),
                format!("all: {}\n%.o: %.c\n\t$(CP) gcc -O2 -c $< -o $@\n", objs.join(" ")),
            )
            .unwrap();
            c.env
                .cmd("make")
                .current_dir(&root)
                .args(["-j8", &format!("CP={}", cachepot_bin().display())])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for b in builds {
        let out = wait_with_timeout(b, Duration::from_secs(300), "make -j8");
        assert!(
            out.status.success(),
            "make failed: {}{}",
            s(&out.stdout),
            s(&out.stderr)
        );
    }
    for name in ["p1", "p2", "p3"] {
        for i in 0..10 {
            assert!(c.env.dir.join(format!("{name}/f{i}.o")).is_file());
        }
    }
    let (max, runs) = max_overlap(&log);
    eprintln!(
        "3 x make -j8, 4 slots: {runs} compiler runs, at most {max} at once; coordinator figures {}",
        c.figures().unwrap()
    );
    assert!(max <= 4, "{max} compiler processes ran at once with 4 slots");
    assert_eq!(c.env.stat("misses"), 30);
    assert!(runs >= 30, "{runs} compiler runs for 30 misses");
    assert_eq!(
        c.figure("slots_granted") as usize,
        runs,
        "every compiler run took a slot"
    );
}

/// A `+` recipe under `make -j2` gets make's jobserver; cachepot takes no token from it (two
/// compiles each waiting for a second token would deadlock), passes it to the compiler untouched,
/// and never runs more than 2 compilers. Ordinary recipes (closed jobserver fds) work too.
#[test]
fn plus_recipe_under_make_j2_jobserver() {
    require_tool("make");
    let mut c = Coord::new("coord-jobserver");
    c.env.set("CACHEPOT_COORDINATOR", "auto");
    c.env.set("CACHEPOT_JOBS", "8");
    let (fake, log) = wrapper(&c.env, "0.1");
    c.env.set("CACHEPOT_PATH", fake.to_str().unwrap());
    c.start();
    let root = c.env.dir.join("proj");
    let mut objs = project(&root, "p", 6);
    objs.extend(project(&root, "q", 4));
    std::fs::write(
        root.join("Makefile"),
        format!(
            "all: {}\np%.o: p%.c\n\t+$(CP) gcc -c $< -o $@\nq%.o: q%.c\n\t$(CP) gcc -c $< -o $@\n",
            objs.join(" ")
        ),
    )
    .unwrap();
    let child = c
        .env
        .cmd("make")
        .current_dir(&root)
        .args(["-j2", &format!("CP={}", cachepot_bin().display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(120), "make -j2");
    assert!(
        out.status.success(),
        "make failed: {}{}",
        s(&out.stdout),
        s(&out.stderr)
    );
    let (max, runs) = max_overlap(&log);
    assert_eq!(
        c.figure("slots_granted") as usize,
        runs,
        "every compiler run took a slot"
    );
    assert!(max <= 2, "{max} compilers at once under make -j2");
    let text = std::fs::read_to_string(&log).unwrap();
    let open = text.lines().filter(|l| l.starts_with("jobserver open")).count();
    // The compilers of the 6 `+` recipes saw make's jobserver pipe, still open.
    assert!(
        open >= 6,
        "the compiler did not get make's jobserver untouched:\n{text}"
    );
    assert_eq!(c.env.stat("misses"), 10);
}

/// A client killed with SIGKILL while it holds a slot frees it.
#[test]
fn sigkilled_client_leaks_no_slot() {
    let mut c = Coord::new("coord-sigkill");
    c.env.set("CACHEPOT_COORDINATOR", "auto");
    c.env.set("CACHEPOT_JOBS", "1");
    let (fake, log) = wrapper(&c.env, "0");
    c.env.set("CACHEPOT_PATH", fake.to_str().unwrap());
    c.start();
    c.env.dir.write("slow.c", "int slow(void) { return 1; }\n");
    c.env.dir.write("fast.c", "int fast(void) { return 2; }\n");
    let mut slow = c
        .env
        .cmd(cachepot_bin())
        .args(["gcc", "-c", "slow.c", "-o", "slow.o"])
        .spawn()
        .unwrap();
    // The compile of slow.c holds the only slot and sleeps.
    c.wait_for("slow.c compiling", |c| {
        std::fs::read_to_string(&log).unwrap_or_default().contains("sleeping") && c.figure("slots_in_use") == 1
    });
    slow.kill().unwrap();
    slow.wait().unwrap();
    c.wait_for("the slot to come back", |c| c.figure("slots_in_use") == 0);
    let fast = c
        .env
        .cmd(cachepot_bin())
        .args(["gcc", "-c", "fast.c", "-o", "fast.o"])
        .spawn()
        .unwrap();
    let out = wait_with_timeout(fast, Duration::from_secs(20), "a compile after the kill");
    assert!(out.status.success());
    assert!(c.env.dir.join("fast.o").is_file());
    // The orphaned wrapper of slow.c is still sleeping; end it by its pid.
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines().filter(|l| l.starts_with("sleeping")) {
        let pid: i32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        // SAFETY: kill(2) on a process this test started; it may already be gone.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// A hung coordinator (SIGSTOPped) must not stall a build: `make -j8` finishes, each compile
/// giving up on it after a bounded silence; the objects equal plain gcc's; nothing of cachepot's
/// reaches the build's output; the fault is counted (and logged once, not once per compile).
#[test]
fn sigstopped_coordinator_does_not_stall_make() {
    let gcc = require_tool("gcc");
    require_tool("make");
    let mut c = Coord::new("coord-sigstop");
    c.env.set("CACHEPOT_COORDINATOR", "auto");
    let error_log = c.env.dir.join("cachepot-errors.log");
    c.env.set("CACHEPOT_ERROR_LOG", error_log.to_str().unwrap());
    c.start();
    let pid = c.figure("pid") as i32;
    // SAFETY: kill(2) on the coordinator this test started; SIGCONT'd below.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let root = c.env.dir.join("p");
    let objs = project(&root, "f", 16);
    std::fs::write(
        root.join("Makefile"),
        format!("all: {}\n%.o: %.c\n\t$(CP) gcc -O2 -c $< -o $@\n", objs.join(" ")),
    )
    .unwrap();
    let make = c
        .env
        .cmd("make")
        .current_dir(&root)
        .args(["-s", "-j8", &format!("CP={}", cachepot_bin().display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(make, Duration::from_secs(90), "make -j8 with a stopped coordinator");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(
        out.status.success(),
        "make failed: {}{}",
        s(&out.stdout),
        s(&out.stderr)
    );
    assert_eq!(
        s(&out.stdout) + &s(&out.stderr),
        "",
        "the build's output is the compiler's (none)"
    );
    for (i, o) in objs.iter().enumerate() {
        let plain = c.env.dir.join(format!("plain{i}.o"));
        let st = Command::new(&gcc)
            .current_dir(&root)
            .args(["-O2", "-c", &format!("f{i}.c"), "-o"])
            .arg(&plain)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(
            std::fs::read(root.join(o)).unwrap(),
            std::fs::read(&plain).unwrap(),
            "{o}"
        );
    }
    let st = c.env.stats();
    assert_eq!(st["misses"], 16, "{st}");
    assert!(
        st["error_kinds"]["coordinator_unresponsive"].as_u64().unwrap_or(0) >= 1,
        "the silent coordinator is counted: {st}"
    );
    let log = std::fs::read_to_string(&error_log).unwrap_or_default();
    assert_eq!(log.matches("did not answer").count(), 1, "said once in the log:\n{log}");
}

/// A coordinator that is alive but keeps a compile queued longer than
/// CACHEPOT_COORDINATOR_MAX_WAIT: the compile goes on without a slot, counted.
#[test]
fn slot_wait_is_bounded() {
    let mut c = Coord::new("coord-maxwait");
    c.env.set("CACHEPOT_COORDINATOR", "auto");
    c.env.set("CACHEPOT_JOBS", "1");
    c.env.set("CACHEPOT_COORDINATOR_MAX_WAIT", "2");
    let (fake, log) = wrapper(&c.env, "0");
    c.env.set("CACHEPOT_PATH", fake.to_str().unwrap());
    c.start();
    c.env.dir.write("slow.c", "int slow(void) { return 1; }\n");
    c.env.dir.write("fast.c", "int fast(void) { return 2; }\n");
    let mut slow = c
        .env
        .cmd(cachepot_bin())
        .args(["gcc", "-c", "slow.c", "-o", "slow.o"])
        .spawn()
        .unwrap();
    c.wait_for("slow.c compiling", |c| {
        std::fs::read_to_string(&log).unwrap_or_default().contains("sleeping") && c.figure("slots_in_use") == 1
    });
    let fast = c
        .env
        .cmd(cachepot_bin())
        .args(["gcc", "-c", "fast.c", "-o", "fast.o"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // slow.c holds the only slot for 30 s; fast.c gives up waiting after 2.
    let out = wait_with_timeout(fast, Duration::from_secs(20), "a compile queued behind a 30 s one");
    assert!(out.status.success());
    assert_eq!(s(&out.stderr), "");
    assert!(c.env.dir.join("fast.o").is_file());
    assert!(c.env.error_kind("coordinator_wait_timeout") >= 1);
    slow.kill().unwrap();
    slow.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines().filter(|l| l.starts_with("sleeping")) {
        let pid: i32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        // SAFETY: kill(2) on a process this test started; it may already be gone.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn frame(version: u8, kind: u8) -> Vec<u8> {
    vec![0, 0, 0, 2, version, kind]
}

/// Read one reply frame: (kind, body).
fn read_reply(conn: &mut UnixStream) -> Option<(u8, Vec<u8>)> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut prefix = [0u8; 4];
    conn.read_exact(&mut prefix).ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(prefix) as usize];
    conn.read_exact(&mut payload).ok()?;
    Some((payload[1], payload[2..].to_vec()))
}

#[test]
fn garbage_on_the_socket_does_not_crash_it() {
    let c = Coord::new("coord-garbage");
    c.start();
    let pid = c.figure("pid");
    let connect = || UnixStream::connect(c.sock()).unwrap();

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..65536)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let mut conn = connect();
    let _ = conn.write_all(&noise);
    drop(conn);

    let refused = |bytes: &[u8], expect: &str| {
        let mut conn = connect();
        conn.write_all(bytes).unwrap();
        let (kind, body) = read_reply(&mut conn).expect("a refusal");
        assert_eq!(kind, 0xEE, "{expect}");
        let msg = s(&body);
        assert!(msg.contains(expect), "{msg}");
        // … and then the coordinator closes the connection.
        assert!(read_reply(&mut conn).is_none());
    };
    refused(&[0xff, 0xff, 0xff, 0xff], "larger than the limit");
    refused(&[0, 0, 0, 0], "shorter");
    refused(&frame(99, 0x01), "protocol version 99 is not supported");
    refused(&frame(1, 0x01), "protocol version 1 is not supported");
    refused(&frame(2, 0x7f), "unknown message kind");
    refused(&[0, 0, 0, 3, 2, 0x03, 0], "malformed");

    // Half a frame, then gone; and a client that talks while it waits for a slot.
    let mut conn = connect();
    conn.write_all(&[0, 0, 0, 2, 2]).unwrap();
    drop(conn);

    let f = c.figures().expect("still running after garbage");
    assert_eq!(f["pid"], pid);
    assert!(f["refused"].as_u64().unwrap() >= 6, "{f}");
    // Still grants slots.
    let mut conn = connect();
    conn.write_all(&frame(2, 0x01)).unwrap();
    assert_eq!(read_reply(&mut conn).unwrap(), (0x81, vec![0]));
    assert_eq!(c.figure("slots_in_use"), 1);
    drop(conn);
    c.wait_for("slot freed", |c| c.figure("slots_in_use") == 0);
}

/// Another uid can neither reach the socket (0700 directory) nor, if the directory is opened up
/// by mistake, use it (the coordinator checks the peer's uid).
#[test]
fn another_user_cannot_connect() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test switches to uid 65534 (nobody) and must run as root, as it does in CI"
    );
    let perl = require_tool("perl");
    let c = Coord::new("coord-otheruid");
    c.start();
    let as_nobody = || {
        let script = r#"
use IO::Socket::UNIX;
$SIG{PIPE} = 'IGNORE'; # the coordinator may refuse and close before we have written
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or do { print "connect failed: $!\n"; exit 0 };
print $s "\0\0\0\2\1\3";
my $buf = ''; my $n;
while ($n = sysread($s, my $chunk, 4096)) { $buf .= $chunk }
print "reply: ", unpack("H*", substr($buf, 0, 6)), " ", substr($buf, 6), "\n";
"#;
        let out = Command::new(&perl)
            .args(["-e", script, c.sock().to_str().unwrap()])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        // No assertion here: the caller first restores the directory's mode (or the
        // coordinator could not be stopped at the end).
        format!("{:?} {}{}", out.status, s(&out.stdout), s(&out.stderr))
    };
    let got = as_nobody();
    assert!(got.contains("connect failed: Permission denied"), "{got}");

    // Open the directory and socket up, as a careless admin might: the peer check still refuses.
    let dir = c.sock().parent().unwrap().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(c.sock(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let got = as_nobody();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(got.contains("is not the coordinator's owner"), "{got}");
    assert!(!got.contains("slots"), "no figures for another user: {got}");
    assert_eq!(c.figure("refused"), 1);
}

/// Measurements for the report (run with `--ignored --nocapture`): the coordinator's RSS after
/// granting 10,000 slots, and a hit's latency with the coordinator off and with it running.
#[test]
#[ignore]
fn measure_rss_and_hit_latency() {
    require_tool("gcc");
    let mut c = Coord::new("coord-measure");
    c.env.set("CACHEPOT_JOBS", "8");
    c.start();
    let pid = c.figure("pid");
    let rss = |what: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let get = |k: &str| status.lines().find(|l| l.starts_with(k)).unwrap_or("").to_string();
        eprintln!("coordinator {what}: {} / {}", get("VmRSS"), get("VmHWM"));
    };
    rss("at start");
    let t = Instant::now();
    for _ in 0..10_000 {
        let mut conn = UnixStream::connect(c.sock()).unwrap();
        conn.write_all(&frame(1, 0x01)).unwrap();
        assert_eq!(read_reply(&mut conn).unwrap().0, 0x81);
    }
    eprintln!("10,000 slots granted, one connection each, in {:?}", t.elapsed());
    // 500 clients at once: 8 hold a slot, the rest wait.
    let held: Vec<UnixStream> = (0..500)
        .map(|_| {
            let mut conn = UnixStream::connect(c.sock()).unwrap();
            conn.write_all(&frame(1, 0x01)).unwrap();
            conn
        })
        .collect();
    c.wait_for("500 clients", |c| c.figure("slots_waiting") == 492);
    rss("after 10,000 grants with 500 clients connected");
    drop(held);
    c.wait_for("all released", |c| c.figure("slots_in_use") == 0);
    rss("after they left");
    eprintln!("figures: {}", c.figures().unwrap());

    c.env
        .dir
        .write("a.c", "#include <stdio.h>\nint a(void) { return printf(\"a\"); }\n");
    c.env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    c.env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    c.env
        .cmd(cachepot_bin())
        .env("CACHEPOT_DIRECT", "0")
        .args(["gcc", "-c", "a.c", "-o", "a.o"])
        .output()
        .unwrap();
    // Alternate off / running call by call, so machine noise hits both alike.
    let n = 300;
    let hit = |mode: &str, direct: &str| {
        let t = Instant::now();
        let out = c
            .env
            .cmd(cachepot_bin())
            .env("CACHEPOT_COORDINATOR", mode)
            .env("CACHEPOT_DIRECT", direct)
            .args(["gcc", "-c", "a.c", "-o", "a.o"])
            .output()
            .unwrap();
        assert!(out.status.success());
        t.elapsed()
    };
    let summary = |v: &mut Vec<Duration>| {
        v.sort();
        let mean = v.iter().sum::<Duration>() / v.len() as u32;
        format!(
            "median {:?}, mean {:?}, p90 {:?}",
            v[v.len() / 2],
            mean,
            v[v.len() * 9 / 10]
        )
    };
    for (direct, what) in [
        ("1", "direct-mode hits (no slot)"),
        ("0", "preprocessor-mode hits (`gcc -E` under a slot)"),
    ] {
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..n {
            off.push(hit("off", direct));
            on.push(hit("auto", direct));
        }
        eprintln!("hit latency, {n} {what} each:");
        eprintln!("  coordinator off:      {}", summary(&mut off));
        eprintln!("  coordinator running:  {}", summary(&mut on));
    }
    // The slot round trip alone: connect, acquire, granted, close.
    let t = Instant::now();
    for _ in 0..1000 {
        let mut conn = UnixStream::connect(c.sock()).unwrap();
        conn.write_all(&frame(1, 0x01)).unwrap();
        read_reply(&mut conn).unwrap();
    }
    eprintln!("  one slot round trip:  {:?}", t.elapsed() / 1000);
    assert_eq!(c.env.stat("misses"), 2);
}
