#!/usr/bin/env python3
"""Remote-hit benchmark: a warm rebuild with an EMPTY local cache dir, every object coming from a
shared server on loopback (Redis; S3 through s3s-fs when it is installed), for cachepot and, when
found, sccache against the same server. Plain gcc and cachepot's local hits are the reference rows.

    python3 bench/remote_hit.py [--files 20] [--runs 5] [--tiny] [--sccache PATH]

Each timed run compiles the project's files one after another (as make -j1 would), from a fresh,
empty local dir (cachepot: CACHEPOT_DIR; sccache: SCCACHE_DIR and a restarted server), and checks
that every object is byte-identical to plain gcc's and that every call was a hit. Rows are run in
interleaved rounds (the machine's load drifts); prints each row's median.
Needs: target/release/cachepot (cargo build --release), redis-server, gcc.

Caveat for the S3 rows: s3s-fs does not set TCP_NODELAY and writes a response's headers and body
separately, so on a reused connection the body waits for the client's delayed ACK (~40 ms). Every
client that keeps its connection (cachepot, sccache) pays it per request after the first; real S3
and MinIO do not behave so.
"""
import argparse
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(500):
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"{what} did not listen on {port}")


def write_project(d, n, tiny):
    files = []
    for i in range(n):
        f = d / f"unit{i}.c"
        if tiny:
            f.write_text(f"int f{i}(int x) {{ return x * {i} + 1; }}\n")
            files.append(f.name)
            continue
        body = "\n".join(
            f"int f{i}_{j}(const char *s) {{ size_t n = strlen(s); char *c = malloc(n + {j}); "
            f"if (!c) return -1; memcpy(c, s, n); int r = (int)n * {j} + c[0]; free(c); "
            f'printf("%d\\n", r); return r; }}'
            for j in range(40)
        )
        f.write_text(f"#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\n{body}\n")
        files.append(f.name)
    return files


def compile_all(prefix, files, cwd, env):
    for f in files:
        subprocess.run(prefix + ["gcc", "-O2", "-c", f, "-o", f[:-2] + ".o"], cwd=cwd, env=env, check=True)


def objects(files, cwd):
    return [(cwd / (f[:-2] + ".o")).read_bytes() for f in files]


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHEPOT_", "SCCACHE_", "AWS_"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


class Contender:
    """One row: `prepare()` makes a fresh context before each timed run, `run(ctx)` is timed."""

    def __init__(self, name, prepare, run, stop=lambda: None):
        self.name, self.prepare, self.run, self.stop, self.times = name, prepare, run, stop, []


def cachepot_remote(name, remote_env, files, work, reference):
    """Fill from local dir A; each timed run starts from a fresh, empty local dir."""
    env = clean_env() | remote_env
    env["CACHEPOT_DIR"] = tempfile.mkdtemp(dir=work)
    compile_all([str(CACHEPOT)], files, work, env)
    def prepare():
        return env | {"CACHEPOT_DIR": tempfile.mkdtemp(dir=work)}
    def run(e):
        compile_all([str(CACHEPOT)], files, work, e)
        assert objects(files, work) == reference, f"{name}: objects differ"
        stats = subprocess.run([str(CACHEPOT), "--show-stats", "--json"], env=e, check=True, capture_output=True, text=True).stdout
        assert f'"hits":{len(files)},' in stats and '"errors":0' in stats, stats
    return prepare, run


def sccache_remote(sccache, remote_env, files, work, reference):
    """Fill through one server; each timed run restarts it on a fresh, empty SCCACHE_DIR."""
    base = clean_env() | remote_env | {"SCCACHE_SERVER_PORT": str(free_port()), "SCCACHE_IDLE_TIMEOUT": "0"}
    def start(env):
        subprocess.run([sccache, "--stop-server"], env=env, capture_output=True)
        subprocess.run([sccache, "--start-server"], env=env, check=True, capture_output=True)
        return env
    start(base | {"SCCACHE_DIR": tempfile.mkdtemp(dir=work)})
    compile_all([sccache], files, work, base)
    def prepare():
        return start(base | {"SCCACHE_DIR": tempfile.mkdtemp(dir=work)})
    def run(e):
        compile_all([sccache], files, work, e)
        assert objects(files, work) == reference, "sccache: objects differ"
        stats = subprocess.run([sccache, "--show-stats"], env=e, capture_output=True, text=True).stdout
        hits = [l.split()[-1] for l in stats.splitlines() if l.startswith("Cache hits ") and "rate" not in l]
        assert hits and hits[0] == str(len(files)), stats
    def stop():
        subprocess.run([sccache, "--stop-server"], env=base, capture_output=True)
    return prepare, run, stop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tiny", action="store_true", help="one-line sources without includes: the cache's own cost shows")
    ap.add_argument("--sccache", default=shutil.which("sccache"))
    a = ap.parse_args()
    if not CACHEPOT.exists():
        sys.exit("build cachepot first: cargo build --release")
    work = Path(tempfile.mkdtemp(prefix="cachepot-remote-bench-"))
    procs = []
    try:
        files = write_project(work, a.files, a.tiny)
        compile_all([], files, work, clean_env())
        reference = objects(files, work)
        rows = [Contender("plain gcc", lambda: None, lambda _: compile_all([], files, work, clean_env()))]
        local_env = clean_env() | {"CACHEPOT_DIR": str(work / "local")}
        compile_all([str(CACHEPOT)], files, work, local_env)
        rows.append(Contender("cachepot, local hits", lambda: None, lambda _: compile_all([str(CACHEPOT)], files, work, local_env)))

        rport = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(redis)
        wait_port(rport, redis, "redis-server")
        url = f"redis://127.0.0.1:{rport}/0"
        rows.append(Contender("cachepot, Redis hits, empty local dir", *cachepot_remote("redis", {"CACHEPOT_REDIS": url}, files, work, reference)))
        if a.sccache:
            rows.append(Contender("sccache, Redis hits, empty local dir", *sccache_remote(a.sccache, {"SCCACHE_REDIS_ENDPOINT": url}, files, work, reference)))

        s3s = shutil.which("s3s-fs")
        if s3s:
            root = work / "s3root"
            (root / "bench").mkdir(parents=True)
            sport = free_port()
            p = subprocess.Popen([s3s, "--host", "127.0.0.1", "--port", str(sport), "--access-key", "benchkey", "--secret-key", "benchsecret", str(root)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_port(sport, p, "s3s-fs")
            creds = {"AWS_ACCESS_KEY_ID": "benchkey", "AWS_SECRET_ACCESS_KEY": "benchsecret"}
            s3 = creds | {"CACHEPOT_BUCKET": "bench", "CACHEPOT_ENDPOINT": f"127.0.0.1:{sport}", "CACHEPOT_S3_USE_SSL": "false", "CACHEPOT_REGION": "us-east-1"}
            rows.append(Contender("cachepot, S3 (s3s-fs) hits, empty local dir", *cachepot_remote("s3", s3, files, work, reference)))
            if a.sccache:
                sc = creds | {"SCCACHE_BUCKET": "bench", "SCCACHE_ENDPOINT": f"http://127.0.0.1:{sport}", "SCCACHE_REGION": "us-east-1", "SCCACHE_S3_USE_SSL": "false"}
                rows.append(Contender("sccache, S3 (s3s-fs) hits, empty local dir", *sccache_remote(a.sccache, sc, files, work, reference)))

        # Interleaved rounds, in a rotating order, so that load changes on a shared machine hit
        # every row alike.
        for r in range(a.runs):
            for c in rows[r % len(rows):] + rows[:r % len(rows)]:
                ctx = c.prepare()
                t = time.perf_counter()
                c.run(ctx)
                c.times.append(time.perf_counter() - t)
        for c in rows:
            c.stop()

        print(f"{a.files} files compiled one after another; median of {a.runs} interleaved runs")
        if a.sccache:
            print("sccache: " + subprocess.run([a.sccache, "--version"], capture_output=True, text=True).stdout.strip())
        for c in rows:
            t = statistics.median(c.times)
            print(f"  {c.name:<46} {t * 1000:8.1f} ms  ({t * 1000 / a.files:6.2f} ms/file)")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
