#!/usr/bin/env python3
"""REAPI benchmark on loopback, against BuildGrid (the server the tests use; .ci/setup-remote.sh installs
it, and PostgreSQL for its scheduler):

1. a remote-executed miss (CACHEPOT_REMOTE_EXECUTION=on, BuildGrid + N test workers from
   tests/data/reapi_worker.py) against plain gcc on the same source: per-call wall time, median and
   p95, and the bytes each action sent to the CAS, with the workers' compiler and with gcc uploaded
   (CACHEPOT_REMOTE_TOOLCHAIN=upload: the first action sends the toolchain, later ones only their own);
2. a hit through the REAPI backend (BuildGrid's Action Cache + CAS) against a hit through Redis, with
   no local level (CACHEPOT_LOCAL=off: both the manifest and the entry come from the server);
3. a cold `cargo build` of a workspace of local crates, plain against RUSTC_WRAPPER=cachepot with
   remote execution (the library crates compile on the workers; the program links here).

    python3 bench/reapi.py [--files 20] [--workers 2] [--calls 30] [--cargo-runs 3]

Every object is checked against plain gcc's. Calls are interleaved between the rows (the machine's
load drifts). BuildGrid is a Python server: its per-request cost, not the protocol's, dominates the
REAPI rows; a Go/Rust engine (Buildbarn, NativeLink) answers faster.
Needs: target/release/cachepot (cargo build --release), bgd and its venv python, PostgreSQL
(/usr/lib/postgresql/*/bin), redis-server, gcc; run as root (PostgreSQL then runs as `postgres`).
"""
import argparse
import glob
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHEPOT = ROOT / "target" / "release" / "cachepot"
WORKER = ROOT / "tests" / "data" / "reapi_worker.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, limit=90):
    end = time.time() + limit
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port}")


def source(i, salt):
    body = "\n".join(
        f"int f{i}_{j}(const char *s) {{ size_t n = strlen(s); char *c = malloc(n + {j}); "
        f"if (!c) return -1; memcpy(c, s, n); int r = (int)n * {j} + c[0]; free(c); "
        f'printf("%d\\n", r); return r; }}'
        for j in range(40)
    )
    return f"#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\nint salt_{salt};\n{body}\n"


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("CACHEPOT_")}


def as_postgres(args):
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + args


def start_postgres(work):
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        sys.exit("PostgreSQL is missing (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    d = work / "pg"
    d.mkdir()
    if os.geteuid() == 0:
        shutil.chown(d, user="postgres")
    subprocess.run(as_postgres([str(bindir / "initdb"), "-D", str(d / "data"), "-A", "trust", "-U", "bgd"]),
                   check=True, capture_output=True)
    port = free_port()
    subprocess.run(as_postgres([str(bindir / "pg_ctl"), "-D", str(d / "data"), "-o",
                                f"-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off",
                                "-l", str(d / "log"), "-w", "start"]), check=True, capture_output=True)
    url = f"postgresql+psycopg2://bgd@127.0.0.1:{port}/postgres"
    subprocess.run(["bgd", "migrate", "apply", url], check=True, capture_output=True)
    return url, lambda: subprocess.run(as_postgres([str(bindir / "pg_ctl"), "-D", str(d / "data"), "-m", "immediate", "stop"]),
                                       capture_output=True)


def start_buildgrid(work, name, pg_url=None):
    port = free_port()
    d = work / name
    d.mkdir()
    conn = sched = svc = ""
    if pg_url:
        conn = f"connections:\n  - !sql-connection &sql\n    connection-string: {pg_url}\n"
        sched = ("schedulers:\n  - !sql-scheduler &sched\n    sql: *sql\n    storage: *cas\n    action-cache: *ac\n"
                 "    poll-interval: 0.05\n    property-set: !dynamic-property-set\n      wildcard-property-keys: [cachepot-toolchain]\n"
                 # Assign queued jobs every 20 ms (the default, 1 s, would be most of a remote miss).
                 "    assigners:\n      - !priority-age-assigner\n        interval: 0.02\n")
        svc = "      - !execution\n        scheduler: *sched\n      - !bots\n        scheduler: *sched\n"
    (d / "bgd.yml").write_text(
        f"server:\n  - !channel\n    address: \"127.0.0.1:{port}\"\n    insecure-mode: true\nthread-pool-size: 100\n{conn}"
        "storages:\n  - !lru-storage &cas\n    size: 1GB\ncaches:\n  - !lru-action-cache &ac\n    storage: *cas\n"
        f"    max-cached-refs: 100000\n    allow-updates: true\n{sched}instances:\n  - name: \"\"\n    services:\n"
        f"      - !action-cache\n        cache: *ac\n      - !cas\n        storage: *cas\n      - !bytestream\n        storage: *cas\n{svc}")
    proc = subprocess.Popen(["bgd", "server", "start", "bgd.yml"], cwd=d, stdout=subprocess.DEVNULL,
                            stderr=open(d / "bgd.log", "w"))
    wait_port(port, proc, "bgd")
    return port, proc


def timed(cmd, cwd, env):
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def stats(env):
    import json
    out = subprocess.run([str(CACHEPOT), "--show-stats", "--json"], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def p95(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]


def row(name, v):
    print(f"| {name} | {statistics.median(v) * 1000:.1f} ms | {p95(v) * 1000:.1f} ms | {len(v)} |")


def write_workspace(ws, salt, crates=8, functions=150):
    """`crates` library crates in a chain (each uses the one before) and a program, every one new
    for `salt` (so neither cachepot nor the engine has seen it)."""
    members = [f"c{i}" for i in range(crates)] + ["app"]
    ws.mkdir(parents=True)
    (ws / "Cargo.toml").write_text("[workspace]\nmembers = [%s]\nresolver = \"2\"\n" % ", ".join(f'"{m}"' for m in members))
    for i in range(crates):
        d = ws / f"c{i}"
        (d / "src").mkdir(parents=True, exist_ok=True)
        dep = f'c{i - 1} = {{ path = "../c{i - 1}" }}\n' if i else ""
        (d / "Cargo.toml").write_text(f'[package]\nname = "c{i}"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n{dep}')
        prev = f"c{i - 1}::total()" if i else "0"
        body = "\n".join(
            f"pub fn f{j}(v: &[u64]) -> u64 {{ v.iter().map(|x| x.wrapping_mul({j} + {salt})).filter(|x| x % 3 != {j % 3}).sum::<u64>() + {j} }}"
            for j in range(functions))
        calls = " + ".join(f"f{j}(&v)" for j in range(0, functions, 10))
        (d / "src" / "lib.rs").write_text(f"{body}\npub fn total() -> u64 {{ let v: Vec<u64> = (0..10).collect(); {prev} + {calls} }}\n")
    app = ws / "app"
    (app / "src").mkdir(parents=True, exist_ok=True)
    (app / "Cargo.toml").write_text(f'[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nc{crates - 1} = {{ path = "../c{crates - 1}" }}\n')
    (app / "src" / "main.rs").write_text(f"fn main() {{ println!(\"{{}}\", c{crates - 1}::total()); }}\n")


def cargo_workspace(work, exec_port, runs):
    cargo = shutil.which("cargo")
    base = {k: v for k, v in clean_env().items() if not (k.startswith("CARGO_") and k != "CARGO_HOME")
            and not k.startswith("RUSTC") and not k.startswith("RUSTFLAGS")} | {"CARGO_INCREMENTAL": "0"}
    plain, remote, sent, compiled = [], [], 0, 0
    for r in range(runs):
        for kind in (("plain", "remote") if r % 2 == 0 else ("remote", "plain")):
            ws = work / f"ws-{kind}-{r}"
            write_workspace(ws, salt=2 * r + (kind == "remote"))
            env = base
            if kind == "remote":
                env = base | {"RUSTC_WRAPPER": str(CACHEPOT), "CACHEPOT_DIR": str(work / f"cargo-cache-{r}"),
                              "CACHEPOT_REAPI": f"grpc://127.0.0.1:{exec_port}", "CACHEPOT_REMOTE_EXECUTION": "on"}
            (plain if kind == "plain" else remote).append(timed([cargo, "build", "-q"], ws, env))
            out = subprocess.run([str(ws / "target" / "debug" / "app")], capture_output=True, text=True, check=True)
            if not out.stdout.strip():
                sys.exit("the program printed nothing")
            if kind == "remote":
                st = stats(env)
                if st["errors"]:
                    sys.exit(f"faults in the remote build: {st}")
                compiled += st["other"].get("remote_execution.compiled", 0)
                sent += st["other"].get("remote_execution.uploaded_bytes", 0)
    print(f"\nA cold `cargo build` of 8 chained library crates (150 functions each) and a program, {runs} runs each:\n")
    print("| row | median | p95 | runs |\n|---|---|---|---|")
    row("plain cargo build", plain)
    row("cargo build, libraries compiled remotely", remote)
    print(f"\n{compiled / runs:.0f} crates compiled remotely per build; bytes sent per action: {sent / max(compiled, 1):.0f}")


def main():
    global CACHEPOT
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20, help="remote-executed misses (each a new source)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--calls", type=int, default=30, help="hits per backend")
    ap.add_argument("--cargo-runs", type=int, default=3, help="cold cargo builds each way (0: none)")
    ap.add_argument("--cachepot", default=str(CACHEPOT), help="the cachepot binary (default: target/release/cachepot)")
    a = ap.parse_args()
    CACHEPOT = Path(a.cachepot).resolve()
    if not CACHEPOT.exists():
        sys.exit("build cachepot first: cargo build --release")
    for tool in ("bgd", "redis-server", "gcc"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (.ci/run installs it)")
    python = Path(os.path.realpath(shutil.which("bgd"))).parent / "python3"
    work = Path(tempfile.mkdtemp(prefix="cachepot-reapi-bench-"))
    os.chmod(work, 0o755)  # PostgreSQL runs as its own user below it
    cleanup = []
    try:
        pg_url, stop_pg = start_postgres(work)
        cleanup.append(stop_pg)
        exec_port, exec_proc = start_buildgrid(work, "exec", pg_url)
        cleanup.append(exec_proc.kill)
        for i in range(a.workers):
            w = subprocess.Popen([str(python), str(WORKER), f"127.0.0.1:{exec_port}", f"bench-{i}"],
                                 env=os.environ | {"REAPI_WORKER_CACHE": str(work / f"worker-cache-{i}")},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cleanup.append(w.kill)
        gcc = shutil.which("gcc")

        # 1. Remote-executed misses against plain gcc, interleaved; each call a new source.
        env = clean_env() | {"CACHEPOT_DIR": str(work / "exec-cache"), "CACHEPOT_REAPI": f"grpc://127.0.0.1:{exec_port}",
                             "CACHEPOT_REMOTE_EXECUTION": "on"}
        src = work / "src"
        src.mkdir()
        up_env = env | {"CACHEPOT_DIR": str(work / "upload-cache"), "CACHEPOT_REMOTE_TOOLCHAIN": "upload"}
        # One warm-up call each: the first connection and the workers' first lease; with the upload,
        # the call that sends the toolchain.
        (src / "warm.c").write_text(source(0, "warm"))
        timed([str(CACHEPOT), "gcc", "-O2", "-c", "warm.c", "-o", "warm.o"], src, env)
        (src / "warm-up.c").write_text(source(0, "warmup"))
        toolchain_call = timed([str(CACHEPOT), "gcc", "-O2", "-c", "warm-up.c", "-o", "warm-up.o"], src, up_env)
        first_sent = stats(up_env)["other"].get("remote_execution.uploaded_bytes", 0)
        remote, local, uploaded = [], [], []
        for i in range(a.files):
            (src / f"r{i}.c").write_text(source(i, f"r{i}"))
            (src / f"u{i}.c").write_text(source(i, f"u{i}"))
            calls = [lambda: remote.append(timed([str(CACHEPOT), "gcc", "-O2", "-c", f"r{i}.c", "-o", f"r{i}.o"], src, env)),
                     lambda: local.append(timed([gcc, "-O2", "-c", f"r{i}.c", "-o", f"l{i}.o"], src, env)),
                     lambda: uploaded.append(timed([str(CACHEPOT), "gcc", "-O2", "-c", f"u{i}.c", "-o", f"u{i}.o"], src, up_env))]
            for f in calls[i % 3:] + calls[:i % 3]:
                f()
            if (src / f"r{i}.o").read_bytes() != (src / f"l{i}.o").read_bytes():
                sys.exit(f"r{i}.o differs from plain gcc's")
            subprocess.run([gcc, "-O2", "-c", f"u{i}.c", "-o", f"lu{i}.o"], cwd=src, check=True)
            if (src / f"u{i}.o").read_bytes() != (src / f"lu{i}.o").read_bytes():
                sys.exit(f"u{i}.o differs from plain gcc's")
        sent = {}
        for name, e in (("worker", env), ("upload", up_env)):
            st = stats(e)
            compiled = st["other"].get("remote_execution.compiled", 0)
            if compiled != a.files + 1 or st["errors"]:
                sys.exit(f"not every miss compiled remotely ({name}): {st}")
            sent[name] = st["other"].get("remote_execution.uploaded_bytes", 0)
        print(f"\n{a.files} misses, {a.workers} workers, loopback; per call:\n")
        print("| row | median | p95 | calls |\n|---|---|---|---|")
        row("plain gcc -O2 -c", local)
        row("cachepot miss, compiled remotely (workers' gcc)", remote)
        row("cachepot miss, compiled remotely (gcc uploaded, already in the CAS)", uploaded)
        print(f"\nThe call that uploaded the toolchain took {toolchain_call * 1000:.0f} ms.")
        print("\nBytes sent to the CAS per remote-executed action:\n")
        print("| toolchain | first action | later actions (mean) |\n|---|---|---|")
        print(f"| the workers' (CACHEPOT_REMOTE_TOOLCHAIN=worker) | - | {sent['worker'] / (a.files + 1):.0f} |")
        print(f"| uploaded (CACHEPOT_REMOTE_TOOLCHAIN=upload) | {first_sent} | {(sent['upload'] - first_sent) / a.files:.0f} |")

        # 2. Hits from an empty local dir: REAPI (BuildGrid AC + CAS) against Redis.
        cache_port, cache_proc = start_buildgrid(work, "cache")
        cleanup.append(cache_proc.kill)
        redis_port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no"], stdout=subprocess.DEVNULL)
        cleanup.append(redis.kill)
        wait_port(redis_port, redis, "redis-server")
        backends = {"REAPI (BuildGrid)": {"CACHEPOT_REAPI": f"grpc://127.0.0.1:{cache_port}"},
                    "Redis": {"CACHEPOT_REDIS": f"redis://127.0.0.1:{redis_port}"}}
        hsrc = work / "hits"
        hsrc.mkdir()
        (hsrc / "h.c").write_text(source(1, "hit"))
        reference = None
        envs = {}
        for n, (name, extra) in enumerate(backends.items()):
            # No local level: every call's manifest and entry come from the server; the cache dir
            # (compiler identity, statistics) stays, as on a developer machine.
            e = clean_env() | extra | {"CACHEPOT_DIR": str(work / f"hit-cache-{n}"), "CACHEPOT_LOCAL": "off"}
            subprocess.run([str(CACHEPOT), "gcc", "-O2", "-c", "h.c", "-o", "h.o"], cwd=hsrc, env=e, check=True)
            reference = reference or (hsrc / "h.o").read_bytes()
            envs[name] = e
        times = {n: [] for n in backends}
        for c in range(a.calls):
            order = list(backends) if c % 2 == 0 else list(backends)[::-1]
            for name in order:
                times[name].append(timed([str(CACHEPOT), "gcc", "-O2", "-c", "h.c", "-o", "h.o"], hsrc, envs[name]))
                if (hsrc / "h.o").read_bytes() != reference:
                    sys.exit(f"{name}: a wrong object")
        for name, e in envs.items():
            st = stats(e)
            if st["hits"] != a.calls or st["errors"]:
                sys.exit(f"{name}: not every call was a remote hit: {st}")
        print("\nA direct-mode hit with no local level (CACHEPOT_LOCAL=off: manifest and entry from the server), one call:\n")
        print("| row | median | p95 | calls |\n|---|---|---|---|")
        for name, v in times.items():
            row(f"cachepot hit through {name}", v)

        # 3. A cargo workspace of local crates, cold: plain cargo against cachepot with remote execution.
        if a.cargo_runs:
            cargo_workspace(work, exec_port, a.cargo_runs)
    finally:
        for f in reversed(cleanup):
            f()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
