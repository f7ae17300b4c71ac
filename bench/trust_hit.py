#!/usr/bin/env python3
"""What signed entries cost a whole local hit: the same warm direct-mode hit of one C file, through the
real binary, with trust off and with trust on (CACHEPOT_SIGNING_KEY and CACHEPOT_TRUSTED_KEYS set, so
the manifest and the entry are both verified against the cache dir's key). Calls are interleaved so the
machine's load falls on both alike; prints the median of each and the difference.

    python3 bench/trust_hit.py [--calls 300] [--big]

--big: a source whose object is about 300 KB (a stored entry of ~100 KB) instead of a small one.
Needs: target/release/cachepot (cargo build --release), gcc. The verification alone, by object size,
is measured by `cargo run --release --example trust_cost`.
"""
import argparse
import os
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
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--big", action="store_true")
    a = ap.parse_args()
    if not CACHEPOT.exists():
        sys.exit(f"{CACHEPOT} is missing: cargo build --release")
    work = Path(tempfile.mkdtemp(prefix="cachepot-trust-hit-"))
    src = work / "a.c"
    if a.big:
        body = "\n".join(
            f'int f{j}(const char *s) {{ char b[64]; snprintf(b, sizeof b, "%s{j}", s); return puts(b) * {j}; }}'
            for j in range(3000)
        )
        src.write_text("#include <stdio.h>\n" + body + "\n")
    else:
        src.write_text("#include <stdio.h>\nint f(int x) { printf(\"%d\\n\", x); return x * 3 + 1; }\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPOT_")}
    key = work / "ci.key"
    public = subprocess.run(
        [str(CACHEPOT), "--new-signing-key", str(key)], env=base, check=True, capture_output=True, text=True
    ).stdout.strip()
    envs = {
        "trust off": base | {"CACHEPOT_DIR": str(work / "off")},
        "trust on": base
        | {"CACHEPOT_DIR": str(work / "on"), "CACHEPOT_SIGNING_KEY": str(key), "CACHEPOT_TRUSTED_KEYS": public},
    }
    cmd = [str(CACHEPOT), "gcc", "-O2", "-c", "a.c", "-o", "a.o"]
    for env in envs.values():
        subprocess.run(cmd, cwd=work, env=env, check=True)
        subprocess.run(cmd, cwd=work, env=env, check=True)
    size = (work / "a.o").stat().st_size
    times = {name: [] for name in envs}
    for _ in range(a.calls):
        for name, env in envs.items():
            t = time.perf_counter()
            subprocess.run(cmd, cwd=work, env=env, check=True)
            times[name].append(time.perf_counter() - t)
    for name, env in envs.items():
        stats = subprocess.run(
            [str(CACHEPOT), "--show-stats", "--json"], env=env, check=True, capture_output=True, text=True
        ).stdout
        assert f'"hits_direct":{a.calls + 1},' in stats, stats
        assert "rejected_signature" not in stats, stats
    stored = max(
        f.stat().st_size for f in (work / "on").glob("?/?/*") if not f.name.endswith(".manifest")
    )
    print(f"object {size} bytes, stored entry (signed, compressed) {stored} bytes, {a.calls} hits each, interleaved")
    med = {name: statistics.median(v) * 1000 for name, v in times.items()}
    for name, m in med.items():
        print(f"{name:>10}: median {m:.3f} ms per hit")
    print(f"difference: {med['trust on'] - med['trust off']:+.3f} ms")


if __name__ == "__main__":
    main()
