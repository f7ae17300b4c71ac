#!/usr/bin/env bash
# shellcheck disable=SC2086 # $flags hold several arguments on purpose
# The stale-hit paths of tests/false_hits.rs, run the same way with ccache (Debian's 4.7.5) and with
# cachepot: for each path, whether the tool hands out an object that does not match the sources.
#   STALE  the tool served (or stored and then served) an object built from other content
#   ok     every object matched its sources (a hit, a miss or a pass-through)
#   BROKE  the build failed or the output differs from the compiler's own (not a stale hit)
#   n/a    the situation could not be built (a save raced the compiler's start 5 times)
# usage: bash bench/false_hits_ccache.sh [path/to/cachepot]   (from the repository root)
# Needs gcc, clang, llvm-profdata(-14), python3, ccache.
set -u
CACHEPOT=$(realpath "${1:-target/debug/cachepot}")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PROFDATA=$(command -v llvm-profdata || command -v llvm-profdata-14)

# A fresh directory for one scenario and tool; its cache dir is inside it.
fresh() {
  local d="$WORK/$1-$2"
  rm -rf "$d"
  mkdir -p "$d"
  cd "$d" || exit 1
}

# tc TOOL [VAR=VALUE…] COMPILER ARGS…: compile through TOOL with its own cache dir in this directory.
# CPP=1 in the environment selects preprocessor mode (no direct mode).
tc() {
  local tool=$1
  shift
  if [ "$tool" = ccache ]; then
    env CCACHE_DIR="$PWD/.cache" ${CPP:+CCACHE_NODIRECT=1} ccache "$@"
  else
    env CACHEPOT_DIR="$PWD/.cache" ${CPP:+CACHEPOT_DIRECT=0} "$CACHEPOT" "$@"
  fi
}

run() { gcc "$@" -o prog 2>/dev/null && ./prog; }
save() { printf '%b' "$2" >"$1.saving" && mv "$1.saving" "$1"; }

# saved_during TOOL FILE NTH: FILE (main.c or h.h) is saved with "during" the moment it is read for
# the NTH time during the first compile; then each text is compiled in turn.
saved_during() {
  local tool=$1 file=$2 nth=$3 first
  local main='#include <stdio.h>\n#include "h.h"\nint main(void) { puts(V); return 0; }\n'
  for _ in 1 2 3 4 5; do
    fresh "saved-$file-$nth-${CPP:-direct}" "$tool"
    if [ "$file" = main.c ]; then
      save main.c '#include <stdio.h>\nint main(void) { puts("before"); return 0; }\n'
      printf '#include <stdio.h>\nint main(void) { puts("during"); return 0; }\n' >during
    else
      save main.c "$main"
      save h.h '#define V "before"\n'
      printf '#define V "during"\n' >during
    fi
    cp "$file" before
    sleep 0.05
    python3 "$HERE/replace_on_read.py" "$file" "$nth" during ready &
    while [ ! -e ready ]; do sleep 0.01; done
    tc "$tool" gcc -c main.c -o main.o >/dev/null 2>&1
    wait
    first=$(run main.o)
    [ "$first" = during ] || continue
    cp before "$file.saving" && mv "$file.saving" "$file"
    rm -f main.o
    tc "$tool" gcc -c main.c -o main.o >/dev/null 2>&1 || { echo BROKE; return; }
    [ "$(run main.o)" = before ] && echo ok || echo STALE
    return
  done
  echo n/a
}

# appears TOOL SETUP ARGS NEW_FILE NEW_TEXT BEFORE AFTER: compile twice, create a file, compile again.
appears() {
  local tool=$1 setup=$2 args=$3 new=$4 text=$5 before=$6 after=$7
  fresh "appears-$new-${CPP:-direct}" "$tool"
  eval "$setup"
  for _ in 1 2; do
    # shellcheck disable=SC2086 # several arguments
    tc "$tool" gcc -c m.c -o m.o $args >/dev/null 2>&1 || { echo BROKE; return; }
    [ "$(run m.o)" = "$before" ] || { echo BROKE; return; }
  done
  mkdir -p "$(dirname "$new")"
  printf '%b' "$text" >"$new"
  # shellcheck disable=SC2086 # several arguments
  tc "$tool" gcc -c m.c -o m.o $args >/dev/null 2>&1 || { echo BROKE; return; }
  [ "$(run m.o)" = "$after" ] && echo ok || echo STALE
}

has_include_source() {
  appears "$1" "printf '#include <stdio.h>\n#if __has_include(\"opt.h\")\n#include \"opt.h\"\n#else\n#define V 0\n#endif\nint main(void) { printf(\"%%d\\\\n\", V); return 0; }\n' >m.c" \
    "" opt.h '#define V 7\n' 0 7
}

has_include_header() {
  appears "$1" "mkdir -p inc later; printf '#if __has_include(<zz_probe.h>)\n#define V 9\n#else\n#define V 0\n#endif\n' >inc/cfg.h; printf '#include <stdio.h>\n#include \"cfg.h\"\nint main(void) { printf(\"%%d\\\\n\", V); return 0; }\n' >m.c" \
    "-Iinc -Ilater" later/zz_probe.h '\n' 0 9
}

include_next() {
  appears "$1" "mkdir -p first middle last; printf '#include_next <cfg.h>\n' >first/cfg.h; printf '#define V 1\n' >last/cfg.h; printf '#include <stdio.h>\n#include \"cfg.h\"\nint main(void) { printf(\"%%d\\\\n\", V); return 0; }\n' >m.c" \
    "-Ifirst -Imiddle -Ilast" middle/cfg.h '#define V 2\n' 1 2
}

asm_include() {
  local tool=$1 v
  fresh asm-include "$tool"
  # shellcheck disable=SC2016 # $V is the assembler's
  printf '\t.include "val.inc"\n\t.globl value\nvalue:\n\tmovl $V, %%eax\n\tret\n\t.section .note.GNU-stack,"",@progbits\n' >f.S
  printf '#include <stdio.h>\nint value(void);\nint main(void) { printf("%%d\\n", value()); return 0; }\n' >m.c
  gcc -c m.c -o main.o
  for v in 1 2; do
    printf '\t.set V, %s\n' "$v" >val.inc
    tc "$tool" gcc -c f.S -o f.o >/dev/null 2>&1 || { echo BROKE; return; }
    [ "$(run main.o f.o)" = "$v" ] || { echo STALE; return; }
  done
  echo ok
}

b_prefix_specs() {
  local tool=$1 v
  fresh b-specs "$tool"
  mkdir pre
  printf '#include <stdio.h>\nint main(void) { printf("%%d\\n", V); return 0; }\n' >m.c
  for v in 1 2; do
    printf '*cpp:\n+ -DV=%s\n\n' "$v" >pre/specs
    tc "$tool" gcc -B pre/ -c m.c -o m.o >/dev/null 2>&1 || { echo BROKE; return; }
    [ "$(run m.o)" = "$v" ] || { echo STALE; return; }
  done
  echo ok
}

default_profdata() {
  local tool=$1 count
  fresh default-profdata "$tool"
  printf 'int f(int x) { int s = 0; for (int i = 0; i < x; i++) { if (i %% 3) s += i; else s -= x; } return s; }\n' >m.c
  local flags="-c m.c -O2 -Wno-profile-instr-unprofiled -Wno-profile-instr-out-of-date -fprofile-instr-use"
  for count in 10 1000000; do
    printf '# IR level Instrumentation Flag\n:ir\nf\n# Func Hash:\n1\n# Num Counters:\n1\n# Counter Values:\n%s\n' "$count" >p.proftext
    "$PROFDATA" merge -o default.profdata p.proftext
    tc "$tool" clang $flags -o m.o >/dev/null 2>&1 || { echo BROKE; return; }
    clang $flags -o plain.o 2>/dev/null
    cmp -s m.o plain.o || { [ "$count" = 10 ] && echo BROKE || echo STALE; return; }
  done
  echo ok
}

records_command_line() {
  local tool=$1 cc=$2 flags=$3 out
  fresh "record-$cc" "$tool"
  printf 'int main(void) { return 0; }\n' >m.c
  for out in one.o two.o; do
    tc "$tool" "$cc" -c m.c $flags -o "$out" >/dev/null 2>&1 || { echo BROKE; return; }
    mv "$out" "ours-$out"
    "$cc" -c m.c $flags -o "$out"
    cmp -s "$out" "ours-$out" || { [ "$out" = one.o ] && echo BROKE || echo STALE; return; }
  done
  echo ok
}

ccc_override() {
  local tool=$1
  fresh ccc-override "$tool"
  printf '#include <stdio.h>\n#ifndef V\n#define V 1\n#endif\nint main(void) { printf("%%d\\n", V); return 0; }\n' >m.c
  if ! tc "$tool" clang -c m.c -o m.o >/dev/null 2>&1 || [ "$(run m.o)" != 1 ]; then
    echo BROKE
    return
  fi
  CCC_OVERRIDE_OPTIONS=+-DV=2 tc "$tool" clang -c m.c -o m.o >/dev/null 2>&1 || { echo BROKE; return; }
  [ "$(run m.o)" = 2 ] && echo ok || echo STALE
}

bad_setting() {
  # A mistyped setting during a compile: anything on the compiler's stderr breaks autoconf's
  # AC_LANG_WERROR checks. "ok" = stderr empty and the compile worked.
  local tool=$1 err
  fresh bad-setting "$tool"
  printf 'int main(void) { return 0; }\n' >m.c
  if [ "$tool" = ccache ]; then
    err=$(CCACHE_DIR="$PWD/.cache" CCACHE_MAXSIZE=lots ccache gcc -c m.c -o m.o 2>&1)
  else
    err=$(CACHEPOT_DIR="$PWD/.cache" CACHEPOT_DIRECT=maybe "$CACHEPOT" gcc -c m.c -o m.o 2>&1)
  fi
  if [ -z "$err" ] && [ -f m.o ]; then echo ok; else echo "BROKE (stderr: ${err%%$'\n'*})"; fi
}

# row NAME FUNCTION [ARGS…]: FUNCTION TOOL ARGS… for each tool.
row() {
  local name=$1 fn=$2
  shift 2
  printf '%-58s %-8s %s\n' "$name" "$("$fn" ccache "$@")" "$("$fn" cachepot "$@")"
}

# The nth read the save follows: after the tool hashed the source (direct), after the preprocessor
# read the file (preprocessor mode: ccache's cpp run is its first read, cachepot's its second).
src_direct() { saved_during "$1" main.c 1; }
src_cpp() { if [ "$1" = ccache ]; then CPP=1 saved_during "$1" main.c 1; else CPP=1 saved_during "$1" main.c 2; fi; }
hdr_cpp() { CPP=1 saved_during "$1" h.h 1; }
has_include_source_cpp() { CPP=1 has_include_source "$1"; }

echo "$(ccache --version | head -1) vs cachepot ($CACHEPOT)"
printf '%-58s %-8s %s\n' path ccache cachepot
row "source saved after the tool read it (direct mode)" src_direct
row "source saved between preprocessing and compiling" src_cpp
row "header saved between preprocessing and compiling" hdr_cpp
row "__has_include in the source, header appears (direct)" has_include_source
row "__has_include in the source, header appears (cpp mode)" has_include_source_cpp
row "__has_include in a header, header appears (direct)" has_include_header
row "#include_next, header appears in between (direct)" include_next
row "assembler .include (.S)" asm_include
row "-B prefix with a specs file" b_prefix_specs
row "clang -fprofile-instr-use (default.profdata)" default_profdata
row "clang -frecord-command-line" records_command_line clang -frecord-command-line
row "clang -g -grecord-command-line" records_command_line clang "-g -grecord-command-line"
row "gcc -frecord-gcc-switches" records_command_line gcc -frecord-gcc-switches
row "CCC_OVERRIDE_OPTIONS=+-DV=2 (clang)" ccc_override
row "bad setting during a compile (stderr)" bad_setting
