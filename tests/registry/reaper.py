#!/usr/bin/python3
"""reaper.py PARENT_PID PIDFILE MAX_SECONDS: lib.sh's watchdog.

Waits (polling every 0.2 s) until PARENT_PID is gone or MAX_SECONDS have passed, then kills
every process listed in PIDFILE ("PID<TAB>MARKER" lines) whose command line still contains
MARKER: SIGTERM, then SIGKILL after 2 s. lib.sh's stop_all kills this process first when
the test ends normally.
"""
import os
import signal
import sys
import time


def alive_with(pid, marker):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return marker.encode() in f.read().replace(b"\0", b" ")
    except OSError:
        return False


def listed(pidfile):
    out = []
    try:
        with open(pidfile) as f:
            for line in f:
                pid, _, marker = line.rstrip("\n").partition("\t")
                if pid.isdigit() and marker:
                    out.append((int(pid), marker))
    except OSError:
        pass
    return out


def main():
    parent, pidfile, max_seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, marker in listed(pidfile):
            if alive_with(pid, marker):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        if sig == signal.SIGTERM:
            time.sleep(2)


if __name__ == "__main__":
    main()
