#!/usr/bin/env python3
"""Warm `make -j2` of bench.py's C corpus (~170 translation units of lua, zstd, zlib, bzip2, liblzma
and sqlite), cachepot against ccache, with the cache's own share measured apart from make's.

    python3 bench/make_warm.py [--cachepot PATH] [--rounds N]

Three ways of building the same Makefile from a clean object tree, interleaved round by round so that
load from other processes falls on each alike:
  - `floor`: CC is a tiny C program that copies the object a plain gcc build made into place (one
    fork + exec + copy per compile, like a hit at no cost): what make, the mkdirs and process starts
    cost by themselves;
  - `cachepot` and `ccache` with a warm cache.
Reports the minimum and median wall time of each, the cache's share (time minus the floor's), and
the ratios cachepot / ccache of both. Every warm object is compared with plain gcc's.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the corpus, its Makefile and the tool environments)

WORK = bench.WORK / "make_warm"
STASH = WORK / "stash"

# argv: ... -c SRC -o OUT. Copies STASH/OUT to OUT (OUT is relative to make's directory).
COPY_CC = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *out = 0;
    for (int i = 1; i + 1 < argc; i++) if (!strcmp(argv[i], "-o")) out = argv[i + 1];
    if (!out) { fprintf(stderr, "copy-cc: no -o\n"); return 2; }
    char src[4096];
    snprintf(src, sizeof src, "%s/%s", STASH, out);
    int in = open(src, O_RDONLY), o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || o < 0) { perror(out); return 1; }
    struct stat st;
    fstat(in, &st);
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n = copy_file_range(in, 0, o, 0, left, 0);
        if (n <= 0) { perror("copy_file_range"); return 1; }
        left -= n;
    }
    return close(o) != 0;
}
"""


def make(cc, env):
    shutil.rmtree(bench.PROJECT / "obj", ignore_errors=True)
    t0 = time.perf_counter()
    r = subprocess.run(["make", "-s", "-j2", f"CC={cc}"], cwd=bench.PROJECT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"make with CC={cc} failed:\n{r.stderr[-3000:]}")
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cachepot", help="the binary (default: built by install.sh --build-only)")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    for t in ("ccache", "make", "gcc"):
        if not shutil.which(t):
            raise SystemExit(f"make_warm: {t} is missing (apt-get install {t})")
    WORK.mkdir(parents=True, exist_ok=True)
    # Named cachepot whatever the file is called (any other name is taken for a compiler's).
    (WORK / "bin").mkdir(exist_ok=True)
    cachepot = WORK / "bin" / "cachepot"
    shutil.copy(a.cachepot or bench.release_binary(), cachepot)
    objs = bench.write_makefile(bench.fetch_project())
    tools = {"cachepot": str(cachepot), "ccache": shutil.which("ccache"), "sccache": None}
    env = {n: bench.Tool(n, tools) for n in ("plain", "cachepot", "ccache")}

    # Plain gcc's objects: the reference, and what the floor's compiler copies.
    make("gcc", env["plain"].env)
    shutil.rmtree(STASH, ignore_errors=True)
    shutil.copytree(bench.PROJECT / "obj", STASH / "obj")
    ref = {o: (bench.PROJECT / o).read_bytes() for o in objs}
    copy_cc = WORK / "copy-cc"
    (WORK / "copy-cc.c").write_text(COPY_CC.replace("STASH", f'"{STASH}"'))
    subprocess.run(["gcc", "-O2", "-o", str(copy_cc), str(WORK / "copy-cc.c")], check=True)

    ccs = {"floor": (str(copy_cc), env["plain"].env)}
    for n in ("cachepot", "ccache"):
        env[n].clear()
        cc = " ".join(env[n].cc)
        make(cc, env[n].env)  # fills the cache
        ccs[n] = (cc, env[n].env)
    times = {n: [] for n in ccs}
    for r in range(a.rounds):
        for n, (cc, e) in ccs.items():
            if n != "floor":
                env[n].zero()
            times[n].append(make(cc, e))
            bad = [o for o in objs if (bench.PROJECT / o).read_bytes() != ref[o]]
            if bad:
                raise SystemExit(f"{n}: {len(bad)} objects differ from plain gcc's, e.g. {bad[0]}")
        hits = {n: env[n].hits() for n in ("cachepot", "ccache")}
        bench.log(f"round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in times)
                  + "; hits/misses " + ", ".join(f"{n} {h[0]}/{h[1]}" for n, h in hits.items()))
    mn = {n: min(v) for n, v in times.items()}
    md = {n: statistics.median(v) for n, v in times.items()}
    print(f"warm make -j2, {len(objs)} translation units, {a.rounds} rounds (s): "
          + ", ".join(f"{n} min {mn[n]:.2f} median {md[n]:.2f}" for n in times))
    for label, t in (("min", mn), ("median", md)):
        cp_share, cc_share = t["cachepot"] - t["floor"], t["ccache"] - t["floor"]
        print(f"{label}: whole build cachepot / ccache {t['cachepot'] / t['ccache']:.2f}; "
              f"cache's own share (minus the floor) cachepot {cp_share:.2f} s, ccache {cc_share:.2f} s, "
              f"ratio {cp_share / cc_share:.2f}")


if __name__ == "__main__":
    main()
