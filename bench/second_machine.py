#!/usr/bin/env python3
""""Second machine": what a shared cache gives a CI runner or a colleague.

    python3 bench/second_machine.py [--tools cachepot,ccache,sccache] [--no-rust] [--no-c]

Machine A fills a Redis (a redis-server on loopback, one database per tool) with the C corpus of
bench/bench.py (about 160 files, `make -j2`) and the cargo workspace of bench/rust.py. Machine B then
builds both with another checkout path, another CARGO_HOME, a fresh copy of the Rust toolchain at
another path (same bytes, new mtimes) and an empty local cache dir. Reported per tool: hits on B out of
the units the tool cached on A, B's wall time, and B's time against a same-machine warm rebuild (B again,
its local cache now warm, a fresh build dir). Base directories: cachepot `CACHEPOT_BASEDIRS`, ccache
`base_dir` (C only), sccache `SCCACHE_BASEDIRS` (0.19; `SCCACHE` names the binary, else `sccache`).
CARGO_INCREMENTAL=0 for every cargo build.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as cbench  # noqa: E402
import rust as rbench  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "second"
CACHEPOT = ROOT / "target" / "release" / "cachepot"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    port = free_port()
    d = WORK / "redis"
    d.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(d), "--databases", "8"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def sysroot():
    return Path(subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True,
                               check=True).stdout.strip())


def copy_toolchain(src, dest):
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "bin").mkdir(parents=True)
    for t in ("rustc", "cargo"):
        shutil.copy(src / "bin" / t, dest / "bin" / t)
    subprocess.run(["cp", "-r", str(src / "lib"), str(dest)], check=True)


class Machine:
    """One machine's directory: a checkout (C sources + Makefile, cargo workspace), CARGO_HOME, cache
    dirs per tool, and the toolchain it runs."""

    def __init__(self, name, toolchain):
        self.root = WORK / name / "home" / "ci"
        self.src = self.root / "src"
        self.toolchain = toolchain
        self.cargo_home = WORK / name / "cargo-home"

    def setup(self, sources):
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.cargo_home, ignore_errors=True)
        self.cargo_home.mkdir(parents=True)
        # The C corpus, copied under this checkout, and a Makefile naming its files absolutely (as
        # CMake would).
        vendor = self.src / "vendor"
        shutil.copytree(cbench.VENDOR, vendor, symlinks=True)
        proj = self.src / "c"
        proj.mkdir(parents=True)
        rules, objs = [], []
        for crate, rel, flags in sources:
            obj = f"obj/{crate}/{str(rel).replace('/', '_')[:-2]}.o"
            objs.append(obj)
            flags = flags.replace(str(cbench.VENDOR), str(vendor))
            rules.append(f"{obj}: {vendor / rel}\n\t@mkdir -p $(@D)\n\t$(CC) $(CFLAGS) {flags} -c $< -o $@\n")
        text = "CFLAGS = -O2 -g -fPIC -w\nall: " + " ".join(objs) + "\n\n" + "\n".join(rules)
        (proj / "Makefile").write_text(text)
        self.objs = objs
        ws = self.src / "rust"
        for rel, text in rbench.FILES.items():
            p = ws / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        shutil.copy(ROOT / "tests" / "data" / "rust-workspace.lock", ws / "Cargo.lock")

    def env(self, tool, port, db):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CACHEPOT_", "SCCACHE_", "CCACHE_", "RUSTC", "CARGO", "RUSTUP", "RUSTFLAGS"))}
        env["PATH"] = f"{self.toolchain / 'bin'}:{env['PATH']}"
        env["CARGO_HOME"] = str(self.cargo_home)
        env["CARGO_INCREMENTAL"] = "0"
        env["CACHEPOT_TEST_GREETING"] = "hello"
        cache = self.root.parent / "caches" / tool
        url = f"redis://127.0.0.1:{port}/{db}"
        if tool == "cachepot":
            env.update(CACHEPOT_DIR=str(cache), CACHEPOT_REDIS=url, CACHEPOT_BASEDIRS=str(self.src))
        elif tool == "ccache":
            env.update(CCACHE_DIR=str(cache), CCACHE_REMOTE_STORAGE=url, CCACHE_BASEDIR=str(self.src),
                       CCACHE_NOHASHDIR="1")
        elif tool == "sccache":
            env.update(SCCACHE_DIR=str(cache), SCCACHE_REDIS_ENDPOINT=url, SCCACHE_BASEDIRS=str(self.src),
                       SCCACHE_IDLE_TIMEOUT="0", SCCACHE_CACHE_SIZE="10G")
        return env, cache


class Tool:
    def __init__(self, name, exe):
        self.name, self.exe = name, exe

    def start(self, env):
        if self.name == "sccache":
            subprocess.run([self.exe, "--stop-server"], env=env, capture_output=True)
            subprocess.run([self.exe, "--start-server"], env=env, check=True, capture_output=True)

    def stop(self, env):
        if self.name == "sccache":
            subprocess.run([self.exe, "--stop-server"], env=env, capture_output=True)

    def zero(self, env):
        subprocess.run([self.exe, "-z"], env=env, capture_output=True)

    def counts(self, env):
        if self.name == "cachepot":
            s = json.loads(subprocess.run([self.exe, "--show-stats", "--json"], env=env, check=True,
                                          capture_output=True, text=True).stdout)
            return s["hits"], s["misses"]
        if self.name == "ccache":
            out = subprocess.run([self.exe, "--print-stats"], env=env, check=True, capture_output=True,
                                 text=True).stdout
            st = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
            hits = int(st.get("direct_cache_hit", 0)) + int(st.get("preprocessed_cache_hit", 0))
            return hits, int(st.get("cache_miss", 0))
        s = json.loads(subprocess.run([self.exe, "--show-stats", "--stats-format", "json"], env=env, check=True,
                                      capture_output=True, text=True).stdout)["stats"]
        total = lambda d: sum(d.get("counts", {}).values()) if isinstance(d, dict) else int(d or 0)  # noqa: E731
        return total(s.get("cache_hits", {})), total(s.get("cache_misses", {}))


def c_build(m, tool, env):
    proj = m.src / "c"
    shutil.rmtree(proj / "obj", ignore_errors=True)
    cc = f"{tool.exe} gcc"
    t = time.monotonic()
    r = subprocess.run(["make", "-s", "-j2", f"CC={cc}"], cwd=proj, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{tool.name}: C build failed:\n{r.stderr[-2000:]}")
    return time.monotonic() - t


def rust_build(m, tool, env, target):
    shutil.rmtree(target, ignore_errors=True)
    env = dict(env, RUSTC_WRAPPER=str(tool.exe))
    t = time.monotonic()
    subprocess.run(["cargo", "build", "-q", "--target-dir", str(target)], cwd=m.src / "rust", env=env, check=True)
    out = subprocess.run([str(target / "debug" / "app")], capture_output=True, text=True, check=True).stdout
    assert '"sum":7' in out, out
    return time.monotonic() - t


def measure(kind, tool, a, b, port, db):
    build = c_build if kind == "C" else (lambda m, t, e: rust_build(m, t, e, m.src / "rust" / "target"))
    env_a, cache_a = a.env(tool.name, port, db)
    env_b, cache_b = b.env(tool.name, port, db)
    for c in (cache_a, cache_b):
        shutil.rmtree(c, ignore_errors=True)
        c.mkdir(parents=True)
    tool.start(env_a)
    tool.zero(env_a)
    t_a = build(a, tool, env_a)
    _, stored = tool.counts(env_a)
    tool.stop(env_a)
    tool.start(env_b)
    tool.zero(env_b)
    t_b = build(b, tool, env_b)
    hits_b, misses_b = tool.counts(env_b)
    tool.zero(env_b)
    t_warm = build(b, tool, env_b)
    tool.stop(env_b)
    return {"kind": kind, "tool": tool.name, "a": t_a, "stored": stored, "b": t_b, "hits_b": hits_b,
            "misses_b": misses_b, "warm": t_warm}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", default="cachepot,ccache,sccache")
    ap.add_argument("--no-c", action="store_true")
    ap.add_argument("--no-rust", action="store_true")
    args = ap.parse_args()
    if not CACHEPOT.exists():
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    exes = {"cachepot": str(CACHEPOT), "ccache": shutil.which("ccache") or "",
            "sccache": os.environ.get("SCCACHE") or shutil.which("sccache") or ""}
    tools = []
    for name in args.tools.split(","):
        if not exes.get(name):
            raise SystemExit(f"{name} not found (sccache: set SCCACHE or put it on PATH)")
        tools.append(Tool(name, exes[name]))
    for t in tools:
        v = subprocess.run([t.exe, "--version"], capture_output=True, text=True).stdout.splitlines()
        log(f"{t.name}: {v[0] if v else '?'}")
    sources = cbench.fetch_project()
    WORK.mkdir(parents=True, exist_ok=True)
    a = Machine("a", sysroot())
    log("machine B: copying the toolchain")
    b = Machine("b-machine", WORK / "b-machine" / "rust-toolchain")
    copy_toolchain(sysroot(), b.toolchain)
    a.setup(sources)
    b.setup(sources)
    redis, port = start_redis()
    rows = []
    try:
        db = 0
        for kind in ("C", "Rust"):
            if (kind == "C" and args.no_c) or (kind == "Rust" and args.no_rust):
                continue
            for t in tools:
                if kind == "Rust" and t.name == "ccache":
                    continue
                log(f"{kind}: {t.name}")
                rows.append(measure(kind, t, a, b, port, db))
                db += 1
    finally:
        redis.terminate()
    print(f"{'':5} {'tool':9} {'A cold':>8} {'units':>6} {'B hits':>7} {'B misses':>9} {'B time':>8} "
          f"{'B warm':>8} {'B/warm':>7}")
    for r in rows:
        print(f"{r['kind']:5} {r['tool']:9} {r['a']:7.1f}s {r['stored']:6} {r['hits_b']:7} {r['misses_b']:9} "
              f"{r['b']:7.1f}s {r['warm']:7.1f}s {r['b'] / r['warm']:6.2f}x")
    print("units: what the tool stored on A (its misses); B: another checkout path, CARGO_HOME, toolchain copy,")
    print("empty local cache, the same Redis; B warm: B again with its local cache warm, fresh build dir.")


if __name__ == "__main__":
    main()
