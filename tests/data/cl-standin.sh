#!/usr/bin/env bash
# A stand-in for Microsoft's cl.exe (which does not run here) for what clang-cl cannot show:
# cl.exe echoes the source's name on stdout, prints /showIncludes there too, writes the
# /sourceDependencies JSON (absolute paths), and /Zi makes it write a PDB shared between compiles.
# Options as tests/msvc.rs uses them: /c, /Fo<file>, /I<dir>, /D<x>, /showIncludes, /Zi,
# /sourceDependencies <file|dir/>, /E (with `#line N "file"` lines). The "object" holds the
# defines and the preprocessed text. Each run appends a line to $CL_STANDIN_LOG.
set -u
mode=link out="" src="" show=0 srcdeps=""
incs=() defs=()
while [ $# -gt 0 ]; do
  case "$1" in
    [/-]c) mode=compile ;;
    [/-]E) mode=preprocess ;;
    [/-]Fo*) out="${1:3}" ;;
    [/-]I) incs+=("$2"); shift ;;
    [/-]I*) incs+=("${1:2}") ;;
    [/-]D*) defs+=("${1:2}") ;;
    [/-]showIncludes) show=1 ;;
    [/-]sourceDependencies) srcdeps="$2"; shift ;;
    [/-]Zi) echo "PDB record" >>vc140.pdb ;;
    [/-]nologo | [/-]O* | [/-]W* | [/-]Z7) ;;
    [/-]*) echo "cl : Command line error D8021 : invalid numeric argument '$1'"; exit 2 ;;
    *) src="$1" ;;
  esac
  shift
done
[ -n "${CL_STANDIN_LOG:-}" ] && echo "$mode $src" >>"$CL_STANDIN_LOG"
[ -n "$src" ] || { echo "cl : Command line error D8003 : missing source filename"; exit 2; }
[ "$mode" = preprocess ] || echo "$(basename "$src")"

headers=()
find_header() {
  local dir
  dir=$(dirname "$1")
  for d in "$dir" "${incs[@]}"; do
    local p="$d/$2"
    [ "$d" = . ] && p="$2"
    [ -f "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}
preprocess() { # file depth
  local f="$1" depth="$2" n=0 line found
  echo "#line 1 \"$f\""
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    if [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
      found=$(find_header "$f" "${BASH_REMATCH[1]}") || {
        echo "$f($n): fatal error C1083: Cannot open include file: '${BASH_REMATCH[1]}'" >&2
        return 1
      }
      headers+=("$found")
      [ "$show" = 1 ] && printf 'Note: including file: %*s%s\n' "$depth" "" "$found" >&3
      preprocess "$found" $((depth + 1)) || return 1
      echo "#line $((n + 1)) \"$f\""
    else
      echo "$line"
    fi
  done <"$f"
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
preprocess "$src" 0 3>&1 >"$tmp" || exit 2
if [ "$mode" = preprocess ]; then
  cat "$tmp"
  exit 0
fi
[ "$mode" = link ] && { echo "LINK : fatal error LNK1104: no linker in the stand-in"; exit 2; }
[ -n "$out" ] || out="$(basename "${src%.*}").obj"
{
  echo "CL-STANDIN-OBJECT defines=${defs[*]:-}"
  cat "$tmp"
} >"$out"
if [ -n "$srcdeps" ]; then
  case "$srcdeps" in */) srcdeps="$srcdeps$(basename "$src").json" ;; esac
  {
    printf '{"Version":"1.1","Data":{"Source":"%s","Includes":[' "$PWD/$src"
    sep=""
    for h in "${headers[@]}"; do printf '%s"%s"' "$sep" "$PWD/$h"; sep=","; done
    printf ']}}\n'
  } >"$srcdeps"
fi
exit 0
