#!/usr/bin/env python3
"""Peer benchmark: cachepot against ccache, sccache and plain gcc, on this machine, in one run.

    python3 bench/bench.py [--runs N] [--calls N] [--skip-cold]

Prints each tool's version, then a table of figures and ratios:
  1. per-call hit latency: one small C file compiled --calls times on a warm cache (median ms);
  2. warm rebuild of a real C project (~170 translation units of lua, zstd, zlib, bzip2, liblzma and
     sqlite, fetched with `cargo vendor`), make -j2 from a clean tree against a warm cache;
  3. cold build of the same project against an empty cache (ratio to plain gcc);
  4. peak memory (max RSS) of one hit.
Every object of a warm build is compared with the cold build's: they must be byte-identical.
Setup (first run): ccache from Debian (apt-get), sccache from `cargo install sccache --locked` (~15
minutes; Debian's is years behind) unless SCCACHE names one, cachepot as `install.sh --build-only` builds it.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
VENDOR = WORK / "vendor"
PROJECT = WORK / "project"
CACHES = WORK / "caches"

CRATES = """
[package]
name = "cachepot-bench-sources"
version = "0.0.0"
edition = "2021"
[lib]
path = "lib.rs"
[dependencies]
lua-src = "=551.1.0"
zstd-sys = "=2.1.3"
libz-sys = { version = "=1.1.31", features = ["static"] }
bzip2-sys = "=0.1.13"
lzma-sys = "=0.1.20"
libsqlite3-sys = { version = "=0.40.0", features = ["bundled"] }
"""


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- tools

def release_binary():
    """Build cachepot as install.sh does (statically linked where glibc allows) and return its path."""
    log("building cachepot (release, as install.sh builds it)")
    out = subprocess.run(["sh", "install.sh", "--build-only"], cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return str(ROOT / out.stdout.strip().splitlines()[-1])


def ensure_tools(want_sccache=True):
    if shutil.which("ccache") is None:
        log("installing ccache (apt-get)")
        subprocess.run(["apt-get", "install", "-y", "-qq", "ccache"], check=True)
    sccache = os.environ.get("SCCACHE") or shutil.which("sccache")
    for cand in [Path.home() / ".cargo/bin/sccache", Path("/work/tools/bin/sccache")]:
        if not sccache and cand.exists():
            sccache = str(cand)
    if not sccache and want_sccache:
        log("installing sccache with `cargo install sccache --locked` (about 15 minutes)")
        subprocess.run(["cargo", "install", "sccache", "--locked"], check=True)
        sccache = str(Path.home() / ".cargo/bin/sccache")
    return {
        "cachepot": release_binary(),
        "ccache": shutil.which("ccache"),
        "sccache": sccache,
    }


def versions(tools):
    out = {"gcc": sh(["gcc", "--version"]).splitlines()[0]}
    out["cachepot"] = sh([tools["cachepot"], "--version"]).strip()
    out["ccache"] = sh([tools["ccache"], "--version"]).splitlines()[0]
    if tools["sccache"]:
        out["sccache"] = sh([tools["sccache"], "--version"]).strip()
    return out


class Tool:
    """One way of compiling: its CC, environment, and how to empty its cache and read its hits."""

    def __init__(self, name, tools):
        self.name = name
        self.tools = tools
        self.cache = CACHES / name
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith(("CACHEPOT_", "CCACHE_", "SCCACHE_")):
                del self.env[k]
        if name == "plain":
            self.cc = ["gcc"]
        elif name == "cachepot":
            self.cc = [tools["cachepot"], "gcc"]
            self.env["CACHEPOT_DIR"] = str(self.cache)
        elif name == "ccache":
            self.cc = [tools["ccache"], "gcc"]
            self.env["CCACHE_DIR"] = str(self.cache)
            self.env["CCACHE_MAXSIZE"] = "10G"
        elif name == "sccache":
            self.cc = [tools["sccache"], "gcc"]
            self.env["SCCACHE_DIR"] = str(self.cache)
            self.env["SCCACHE_CACHE_SIZE"] = "10G"
            self.env["SCCACHE_IDLE_TIMEOUT"] = "0"

    def clear(self):
        if self.name == "sccache":
            subprocess.run([self.tools["sccache"], "--stop-server"], env=self.env, capture_output=True)
        shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        if self.name == "sccache":
            subprocess.run([self.tools["sccache"], "--start-server"], env=self.env, check=True, capture_output=True)

    def zero(self):
        if self.name == "cachepot":
            sh(self.cc[:1] + ["--zero-stats"], env=self.env)
        elif self.name == "ccache":
            sh([self.tools["ccache"], "-z"], env=self.env)
        elif self.name == "sccache":
            sh([self.tools["sccache"], "--zero-stats"], env=self.env)

    def hits(self):
        if self.name == "cachepot":
            st = json.loads(sh(self.cc[:1] + ["--show-stats", "--json"], env=self.env))
            return st["hits"], st["misses"]
        if self.name == "ccache":
            text = sh([self.tools["ccache"], "-s", "-v"], env=self.env)
            hits = sum(int(m) for m in re.findall(r"^\s+(?:Direct|Preprocessed):\s+(\d+)", text, re.M)[:2])
            miss = re.search(r"^\s+Misses:\s+(\d+)", text, re.M)
            return hits, int(miss.group(1)) if miss else None
        if self.name == "sccache":
            text = sh([self.tools["sccache"], "--show-stats"], env=self.env)
            hits = re.search(r"^Cache hits\s+(\d+)", text, re.M)
            miss = re.search(r"^Cache misses\s+(\d+)", text, re.M)
            return int(hits.group(1)) if hits else None, int(miss.group(1)) if miss else None
        return None, None

    def stop(self):
        if self.name == "sccache":
            subprocess.run([self.tools["sccache"], "--stop-server"], env=self.env, capture_output=True)


# ---------------------------------------------------------------- the project

def fetch_project():
    if not VENDOR.exists():
        log("fetching C sources with cargo vendor")
        tmp = WORK / "vendor-manifest"
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "Cargo.toml").write_text(CRATES)
        (tmp / "lib.rs").write_text("")
        subprocess.run(["cargo", "vendor", "-q", str(VENDOR)], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    sources = []  # (crate, path relative to VENDOR, flags)
    v = VENDOR

    def add(crate, files, flags):
        for f in sorted(files):
            sources.append((crate, f.relative_to(v), flags))

    lua = sorted(v.glob("lua-src/lua-5.4*"))[-1]
    add("lua", [f for f in lua.glob("*.c") if f.name not in ("lua.c", "luac.c", "onelua.c")], "-DLUA_USE_LINUX")
    zstd = v / "zstd-sys/zstd/lib"
    add("zstd", [f for d in ("common", "compress", "decompress", "dictBuilder") for f in (zstd / d).glob("*.c")],
        f"-I{zstd} -I{zstd}/common -DZSTD_DISABLE_ASM")
    zlib = v / "libz-sys/src/zlib"
    add("zlib", zlib.glob("*.c"), f"-I{zlib} -DHAVE_UNISTD_H -DHAVE_STDARG_H")
    bz = v / "bzip2-sys/bzip2-1.0.8"
    add("bzip2", [bz / f"{n}.c" for n in ("blocksort", "huffman", "crctable", "randtable", "compress", "decompress", "bzlib")],
        "-D_FILE_OFFSET_BITS=64")
    lz = v / "lzma-sys"
    lzs = lz / "xz-5.2/src"
    dirs = ["common", "lzma", "lz", "check", "delta", "rangecoder", "simple"]
    # As lzma-sys's build.rs: the small CRC variants and table generators are not part of the library.
    files = [f for d in dirs for f in (lzs / "liblzma" / d).glob("*.c")
             if f.stem not in ("crc32_small", "crc64_small") and not f.stem.endswith("tablegen")]
    files += [lzs / "common/tuklib_cpucores.c", lzs / "common/tuklib_physmem.c"]
    incs = " ".join(f"-I{lzs}/liblzma/{d}" for d in ["api"] + dirs) + f" -I{lzs}/common -I{lz}"
    add("lzma", files, f"-DHAVE_CONFIG_H=1 {incs}")
    add("sqlite", [v / "libsqlite3-sys/sqlite3/sqlite3.c"], "-DSQLITE_THREADSAFE=1")
    return sources


def write_makefile(sources):
    PROJECT.mkdir(parents=True, exist_ok=True)
    rules, objs = [], []
    for crate, rel, flags in sources:
        obj = f"obj/{crate}/{str(rel).replace('/', '_')[:-2]}.o"
        objs.append(obj)
        rules.append(f"{obj}: {VENDOR / rel}\n\t@mkdir -p $(@D)\n\t$(CC) $(CFLAGS) {flags} -c $< -o $@\n")
    text = "CFLAGS = -O2 -fPIC -ffunction-sections -fdata-sections -w\nall: " + " ".join(objs) + "\n\n"
    text += "\n".join(rules) + "\nclean:\n\trm -rf obj\n"
    (PROJECT / "Makefile").write_text(text)
    return objs


def build(tool, objs):
    shutil.rmtree(PROJECT / "obj", ignore_errors=True)
    cc = " ".join(tool.cc)
    t0 = time.perf_counter()
    r = subprocess.run(["make", "-s", "-j2", f"CC={cc}"], cwd=PROJECT, env=tool.env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{tool.name} build failed:\n{r.stderr[-3000:]}")
    return dt, {o: (PROJECT / o).read_bytes() for o in objs}


# ---------------------------------------------------------------- measurements

def small_file():
    d = WORK / "small"
    d.mkdir(parents=True, exist_ok=True)
    (d / "small.c").write_text("#include <stdio.h>\nint main(void) { printf(\"hello\\n\"); return 0; }\n")
    return d


def hit_latency(tools, calls):
    """Median ms per warm hit of each tool. Calls are interleaved (one of each tool per round) so
    that load from other processes falls on every tool alike."""
    d = small_file()
    cmds = {t.name: t.cc + ["-O2", "-c", "small.c", "-o", "small.o"] for t in tools}
    for t in tools:
        subprocess.run(cmds[t.name], cwd=d, env=t.env, check=True)
    times = {t.name: [] for t in tools}
    for i in range(calls):
        for t in tools:
            if t.name == "plain" and i >= 20:
                continue
            t0 = time.perf_counter()
            subprocess.run(cmds[t.name], cwd=d, env=t.env, check=True)
            times[t.name].append((time.perf_counter() - t0) * 1000)
    out = {}
    for t in tools:
        # Peak RSS of one hit (the client process; sccache's server is not counted), measured by a
        # tiny C launcher so that no Python memory is counted in the child before its exec.
        r = subprocess.run([str(rss_launcher())] + cmds[t.name], cwd=d, env=t.env, check=True, capture_output=True, text=True)
        out[t.name] = (statistics.median(times[t.name]), int(r.stderr.strip().splitlines()[-1]) / 1024.0)
    return out


def rss_launcher():
    exe = WORK / "maxrss"
    if not exe.exists():
        src = WORK / "maxrss.c"
        src.write_text(r"""
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    pid_t pid = fork();
    if (pid == 0) { execvp(argv[1], argv + 1); _exit(127); }
    int status; struct rusage ru;
    wait4(pid, &status, 0, &ru);
    fprintf(stderr, "%ld\n", ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
""")
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2, help="builds per figure; the minimum is reported")
    ap.add_argument("--calls", type=int, default=300, help="calls for the per-call hit latency")
    ap.add_argument("--skip-cold", action="store_true", help="measure hit latency and RSS only")
    ap.add_argument("--tools", default="plain,cachepot,ccache,sccache", help="comma-separated subset to run")
    ap.add_argument("--rust", action="store_true", help="also run bench/rust.py (cargo build, cachepot vs sccache)")
    ap.add_argument("--remote", action="store_true", help="also run bench/remote_hit.py (empty local dir, Redis/S3)")
    args = ap.parse_args()
    names = args.tools.split(",")
    tools = ensure_tools("sccache" in names)
    vers = versions(tools)
    for k, v in vers.items():
        print(f"{k:9} {v}")
    T = {n: Tool(n, tools) for n in names}
    res = {n: {} for n in names}
    for n in names:
        T[n].clear()
    for n, (lat, rss) in hit_latency([T[n] for n in names], args.calls).items():
        res[n]["latency"], res[n]["rss"] = lat, rss
        log(f"{n}: hit latency {lat:.2f} ms, max RSS {rss:.1f} MiB")
    if not args.skip_cold:
        objs = write_makefile(fetch_project())
        log(f"project: {len(objs)} translation units")
        for n in names:
            tool = T[n]
            colds, warms = [], []
            for run in range(args.runs):
                tool.clear()
                dt, cold_objs = build(tool, objs)
                colds.append(dt)
                log(f"{n}: cold build {dt:.1f} s")
                if n == "plain":
                    continue
                tool.zero()
                dt, warm_objs = build(tool, objs)
                warms.append(dt)
                hits, misses = tool.hits()
                log(f"{n}: warm build {dt:.1f} s, hits {hits}, misses {misses}")
                bad = [o for o in objs if warm_objs[o] != cold_objs[o]]
                if bad:
                    raise SystemExit(f"{n}: {len(bad)} warm objects differ from the cold build's, e.g. {bad[0]}")
                res[n]["hits"], res[n]["misses"] = hits, misses
            res[n]["cold"] = min(colds)
            if warms:
                res[n]["warm"] = min(warms)
        res["tu"] = len(objs)
    for n in names:
        T[n].stop()
    report(res, args)
    # The Rust and remote rows have their own scripts; run them with the same sccache.
    extra_env = dict(os.environ, SCCACHE=tools["sccache"] or "")
    # s3s-fs and the other servers .ci/setup-remote.sh installs live here.
    ci_tools = Path(os.environ.get("CACHEPOT_CI_TOOLS", Path.home() / ".cache/cachepot-ci-tools")) / "bin"
    extra_env["PATH"] = f"{ci_tools}:{extra_env.get('PATH', '')}"
    if args.rust:
        print("\n## Rust: cargo build of a real workspace\n", flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench/rust.py"), "--runs", str(args.runs)], env=extra_env, check=True)
    if args.remote:
        print("\n## Remote hits: warm rebuild with an empty local dir\n", flush=True)
        cmd = [sys.executable, str(ROOT / "bench/remote_hit.py")]
        if tools["sccache"]:
            cmd += ["--sccache", tools["sccache"]]
        subprocess.run(cmd, env=extra_env, check=True)


def report(res, args):
    def f(v, fmt):
        return "—" if v is None else fmt.format(v)

    print()
    print(f"| | plain gcc | cachepot | ccache | sccache | cachepot / faster peer |")
    print("|---|---|---|---|---|---|")
    peers = ["ccache", "sccache"]

    def row(label, key, fmt, with_plain=True):
        vals = {n: res.get(n, {}).get(key) for n in ["plain", "cachepot", "ccache", "sccache"]}
        best = min((vals[p] for p in peers if vals[p] is not None), default=None)
        ratio = vals["cachepot"] / best if best and vals["cachepot"] is not None else None
        print(f"| {label} | {f(vals['plain'] if with_plain else None, fmt)} | {f(vals['cachepot'], fmt)} | "
              f"{f(vals['ccache'], fmt)} | {f(vals['sccache'], fmt)} | {f(ratio, '{:.2f}x')} |")

    row(f"small C file, warm hit, median ms per call ({args.calls} calls)", "latency", "{:.2f}")
    row("max RSS of one hit, MiB", "rss", "{:.1f}", with_plain=False)
    if "tu" in res:
        row(f"{res['tu']} real C files, warm rebuild make -j2, s", "warm", "{:.2f}", with_plain=False)
        row(f"{res['tu']} real C files, cold build make -j2, s", "cold", "{:.1f}")
        plain = res.get("plain", {}).get("cold")
        print()
        for n in [t for t in ["cachepot", "ccache", "sccache"] if t in res and plain]:
            print(f"{n}: cold build {res[n]['cold'] / plain:.2f}x plain gcc; warm build hits {res[n].get('hits')}, "
                  f"misses {res[n].get('misses')}")
        print("every warm-build object is byte-identical to the cold build's")


if __name__ == "__main__":
    main()
