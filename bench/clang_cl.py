#!/usr/bin/env python3
"""clang-cl through cachepot: the time of a plain compile, of a cachepot miss (a source the cache has not
seen, in a cache dir that has seen the compiler: the compile with /showIncludes added, the listing
read, the headers hashed, the entry and manifest stored) and of a warm direct-mode hit, for one self-contained C++ source with three headers (/X: no Windows headers
here). Calls are interleaved so the machine's load falls on all alike; prints the median of each.

    python3 bench/clang_cl.py [--runs 15] [--functions 40]

Needs: target/release/cachepot (cargo build --release) and Debian's clang (run as clang-cl through a
symlink made here).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHEPOT = ROOT / "target" / "release" / "cachepot"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--functions", type=int, default=40)
    a = ap.parse_args()
    if not CACHEPOT.exists():
        sys.exit(f"{CACHEPOT} is missing: cargo build --release")
    clang = shutil.which("clang")
    if not clang:
        sys.exit("clang is not installed")
    work = Path(tempfile.mkdtemp(prefix="cachepot-clang-cl-"))
    (work / "bin").mkdir()
    cl = work / "bin" / "clang-cl"
    cl.symlink_to(clang)
    (work / "inc").mkdir()
    (work / "inc" / "vec.h").write_text(
        "#pragma once\ntemplate <class T> struct Vec { T *p; int n;\n"
        "  T sum() const { T s{}; for (int i = 0; i < n; ++i) s += p[i]; return s; } };\n"
    )
    (work / "inc" / "ops.h").write_text('#pragma once\n#include "vec.h"\n#define SCALE 3\n')
    (work / "inc" / "all.h").write_text('#pragma once\n#include "ops.h"\n')
    body = "\n".join(
        f"double f{j}(const Vec<double> &v) {{ return v.sum() * SCALE + {j}; }}\n"
        f"int g{j}(const Vec<int> &v) {{ return v.sum() ^ {j}; }}"
        for j in range(a.functions)
    )
    source = '#include "all.h"\n' + body + "\n"
    (work / "a.cpp").write_text(source)
    args = ["/nologo", "/c", "/X", "/Iinc", "/O2", "/EHsc", "a.cpp", "/Foa.obj"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPOT_")}
    warm = base | {"CACHEPOT_DIR": str(work / "warm")}
    misses = base | {"CACHEPOT_DIR": str(work / "misses")}
    for env in (warm, misses):
        subprocess.run([str(CACHEPOT), str(cl), *args], cwd=work, env=env, check=True)

    def timed(cmd, env):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=work, env=env, check=True)
        return time.perf_counter() - t

    times = {"plain clang-cl": [], "cachepot miss": [], "cachepot hit": []}
    for i in range(a.runs):
        times["plain clang-cl"].append(timed([str(cl), *args], base))
        # The same source with a new last line: a miss (the compiler's identity is already known).
        (work / "m.cpp").write_text(source + f"// run {i}\n")
        miss_args = [x for x in args if x not in ("a.cpp", "/Foa.obj")] + ["m.cpp", "/Fom.obj"]
        times["cachepot miss"].append(timed([str(CACHEPOT), str(cl), *miss_args], misses))
        times["cachepot hit"].append(timed([str(CACHEPOT), str(cl), *args], warm))
    stats = subprocess.run(
        [str(CACHEPOT), "--show-stats", "--json"], env=warm, check=True, capture_output=True, text=True
    ).stdout
    print(f"clang: {subprocess.run([clang, '--version'], capture_output=True, text=True).stdout.splitlines()[0]}")
    print(f"source: a.cpp, {a.functions * 2} functions, 3 headers; object {(work / 'a.obj').stat().st_size} bytes")
    for name, ts in times.items():
        print(f"{name:16} median {statistics.median(ts) * 1000:8.1f} ms   (min {min(ts) * 1000:.1f}, {len(ts)} runs)")
    plain = statistics.median(times["plain clang-cl"])
    print(f"miss / plain: {statistics.median(times['cachepot miss']) / plain:.2f}x, "
          f"hit / plain: {statistics.median(times['cachepot hit']) / plain:.3f}x")
    print(f"warm cache stats: {stats.strip()}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
