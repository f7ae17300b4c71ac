#!/usr/bin/env python3
"""Replace PATH with the bytes of NEW (a file renamed over it, as editors save) the moment PATH is
read and closed for the NTH time, as tests/false_hits.rs does with inotify. Touches READY once the
watch is in place, so the caller can start the compile. Used by bench/false_hits_ccache.sh.

usage: replace_on_read.py PATH NTH NEW READY
"""
import ctypes
import os
import struct
import sys

IN_CLOSE_NOWRITE = 0x10
IN_CLOEXEC = 0o2000000
EVENT_HEADER = struct.calcsize("iIII")


def main():
    path, nth, new, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(IN_CLOEXEC)
    if fd < 0 or libc.inotify_add_watch(fd, path.encode(), IN_CLOSE_NOWRITE) < 0:
        sys.exit(f"inotify: {os.strerror(ctypes.get_errno())}")
    open(ready, "w").close()
    seen = 0
    while seen < nth:
        # A watch on a file: events carry no name, so each is exactly one header long.
        seen += len(os.read(fd, 4096)) // EVENT_HEADER
    tmp = path + ".saving"
    with open(new, "rb") as src, open(tmp, "wb") as dst:
        dst.write(src.read())
    os.rename(tmp, path)


if __name__ == "__main__":
    main()
