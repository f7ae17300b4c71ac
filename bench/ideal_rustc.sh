#!/bin/bash
# The ideal cache, for bench/rust.py's floor of a warm build: as RUSTC_WRAPPER, it answers every
# rustc call that has outputs by copying them from an earlier plain build's target dir (no lookup,
# no hashing, no key), so a build through it costs cargo's own work, the build-script runs and one
# process plus a `cp` per unit — what no cache can go below.
#   IDEAL_FROM    the earlier build's target dir
#   IDEAL_TARGET  this build's target dir
#   IDEAL_MISSES  a file that gets one line per call it could not answer (it runs rustc then)
rustc="$1"
shift
out= name= extra=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
    --out-dir) out="${args[i + 1]}" ;;
    --crate-name) name="${args[i + 1]}" ;;
    -C) case "${args[i + 1]}" in extra-filename=*) extra="${args[i + 1]#extra-filename=}" ;; esac ;;
    esac
done
if [ -n "$out" ] && [ -n "$name" ] && [ -n "$extra" ]; then
    from="$IDEAL_FROM/${out#"$IDEAL_TARGET"/}"
    shopt -s nullglob
    files=("$from"/*"$name$extra"*)
    if [ ${#files[@]} -gt 0 ]; then
        mkdir -p "$out" && exec cp "${files[@]}" "$out/"
    fi
    echo "$name$extra" >>"$IDEAL_MISSES"
fi
exec "$rustc" "$@"
