#!/usr/bin/env bash
# A stand-in for Wind River's diab driver (dcc, dplus), which cannot be installed where cachepot is
# tested. It has diab's command-line interface as tests/diab.rs uses it: -c/-S compile, -E
# preprocesses to stdout with `# N "file"` lines, -o names the output, -t names the target,
# -I/-D/-U, -X and -W options, and the -Xmake-dependency family (the listing on stdout, or in
# the -Xmake-dependency-savefile= file, naming -Xmake-dependency-target= or the object). The
# "object" holds the target, the defines and the preprocessed text, so any input change shows.
# Each run appends its mode to $DIAB_STANDIN_LOG, so a test can tell that a hit ran nothing.
set -u
mode=link out="" target="${DTARGET:-PPC}" src="" dep=0 savefile="" deptarget=""
incs=() defs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -c) mode=compile ;;
    -S) mode=assemble ;;
    -E) mode=preprocess ;;
    -o) out="$2"; shift ;;
    -t) target="$2"; shift ;;
    -t*) target="${1#-t}" ;;
    -I) incs+=("$2"); shift ;;
    -I*) incs+=("${1#-I}") ;;
    -D) defs+=("$2"); shift ;;
    -D*) defs+=("${1#-D}") ;;
    -U*) ;;
    -Xmake-dependency-savefile=*) savefile="${1#*=}" ;;
    -Xmake-dependency-target=*) deptarget="${1#*=}" ;;
    -Xmake-dependency*) dep=1 ;;
    -X* | -W* | -O* | -g*) ;;
    -*) echo "dcc: error: unknown option $1" >&2; exit 2 ;;
    *) src="$1" ;;
  esac
  shift
done
[ -n "${DIAB_STANDIN_LOG:-}" ] && echo "$mode $src" >>"$DIAB_STANDIN_LOG"
[ -n "$src" ] || { echo "dcc: error: no input file" >&2; exit 2; }

headers=()
find_header() { # includer name -> path as the compiler names it
  local dir
  dir=$(dirname "$1")
  for d in "$dir" "${incs[@]}"; do
    local p="$d/$2"
    [ "$d" = . ] && p="$2"
    [ -f "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}
preprocess() { # file
  local f="$1" n=0 line found
  echo "# 1 \"$f\""
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    if [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
      found=$(find_header "$f" "${BASH_REMATCH[1]}") || {
        echo "\"$f\", line $n: fatal error: cannot open include file \"${BASH_REMATCH[1]}\"" >&2
        return 1
      }
      headers+=("$found")
      preprocess "$found" || return 1
      echo "# $((n + 1)) \"$f\""
    elif [[ $line =~ ^[[:space:]]*#[[:space:]]*error ]]; then
      echo "\"$f\", line $n: error: $line" >&2
      return 1
    else
      echo "$line"
    fi
  done <"$f"
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
preprocess "$src" >"$tmp" || exit 1
text=$(cat "$tmp")
if [ "$mode" = preprocess ]; then
  printf '%s\n' "$text"
  exit 0
fi
[ "$mode" = link ] && { echo "dld: error: no linker in the stand-in" >&2; exit 1; }
stem=$(basename "${src%.*}")
[ -n "$out" ] || { [ "$mode" = assemble ] && out="$stem.s" || out="$stem.o"; }
echo "\"$src\": warning: stand-in diab compiled this for $target" >&2
{
  echo "DIAB-STANDIN-OBJECT target=$target"
  echo "defines=${defs[*]:-}"
  printf '%s\n' "$text"
} >"$out"
if [ "$dep" = 1 ]; then
  listing="${deptarget:-$out}: $src ${headers[*]:-}"
  if [ -n "$savefile" ]; then echo "$listing" >"$savefile"; else echo "$listing"; fi
fi
exit 0
