"""The commands of ``tests/support/recipes.toml``: small programs that behave in one way each.

``python3 recipe_child.py MODE [ARGS]``; every mode flushes what it prints at once.
"""

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time

FOREVER = 600


def say(text, stream=sys.stdout):
    """One line in one write, so that lines of two processes sharing a pipe never interleave."""
    stream.write(text + "\n")
    stream.flush()


def spawn(mode):
    """Start this script again in ``mode`` with our stdout and stderr; return its pid once
    the child has done what its mode sets up (it says so on a pipe of its own)."""
    ready_read, ready_write = os.pipe()
    child = subprocess.Popen([sys.executable, __file__, mode, str(ready_write)],
                             pass_fds=(ready_write,))
    os.close(ready_write)
    os.read(ready_read, 1)
    os.close(ready_read)
    return child.pid


def started(fd):
    """Tell the parent of :func:`spawn` that this child is set up."""
    os.write(int(fd), b"+")
    os.close(int(fd))


# What a hostile command would look for in another process's memory.
SECRET_LOOKING = re.compile(rb"[A-Z][A-Z0-9_]*(?:TOKEN|SECRET|KEY)[A-Z0-9_]*=[^\0\n]{1,200}")
PTRACE_SEIZE = 0x4206


def snoop():
    """Print every environment and command line of /proc this process can read, then try the
    memory and ptrace of its parent and grandparent (the worker and gunicorn's master)."""
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as file:
                    data = file.read()
            except OSError:
                continue
            for part in data.split(b"\0"):
                if part:
                    say(f"{name} {pid}: {part.decode(errors='replace')}")
    parent = os.getppid()
    with open(f"/proc/{parent}/stat", "rb") as file:
        grandparent = int(file.read().rpartition(b")")[2].split()[2])
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in (parent, grandparent):
        say(f"mem {pid}: {read_memory(pid)}")
        # SEIZE does not stop the process; it is let go when this one exits.
        attached = libc.ptrace(PTRACE_SEIZE, pid, None, None) == 0
        say(f"ptrace {pid}: {'attached' if attached else 'denied'}")


def read_memory(pid):
    """Secret-looking strings of the process's heap and stack, or why they cannot be read."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            regions = [line.split() for line in maps]
        with open(f"/proc/{pid}/mem", "rb") as mem:
            found = []
            for region in regions:
                if region[1].startswith("r") and region[-1] in ("[heap]", "[stack]"):
                    start, end = (int(x, 16) for x in region[0].split("-"))
                    mem.seek(start)
                    found += SECRET_LOOKING.findall(mem.read(end - start))
    except OSError as error:
        return f"denied ({error.strerror})"
    return "read " + " ".join(sorted({f.decode(errors="replace") for f in found}))


def main(mode, *args):
    if mode == "lines":  # N lines on each stream, then exit with CODE
        count, code = int(args[0]), int(args[1])
        for n in range(count):
            say(f"out {n}")
            say(f"err {n}", sys.stderr)
        sys.exit(code)
    if mode == "gate":  # block until the file PATH exists
        say("waiting")
        while not os.path.exists(args[0]):
            time.sleep(0.01)
        say("through")
    elif mode == "sleep":
        say(f"pid {os.getpid()}")
        time.sleep(FOREVER)
    elif mode == "stubborn":  # has a child that ignores SIGTERM, from its first millisecond
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            say(f"child {os.getpid()}")
            time.sleep(FOREVER)
            os._exit(0)
        say(f"pid {os.getpid()}")
        time.sleep(FOREVER)
    elif mode == "leftover":  # exits at once, leaving a sleeping child in the group
        spawn("background")
        say("leaving")
    elif mode == "background":
        say(f"child {os.getpid()}")
        started(args[0])
        time.sleep(FOREVER)
    elif mode == "escaper":  # a child that leaves the group but keeps our pipes
        spawn("setsid")
        say("leaving")
    elif mode == "setsid":
        os.setsid()
        say(f"child {os.getpid()}")
        started(args[0])
        time.sleep(FOREVER)
    elif mode == "flood":
        sys.stdout.write("".join(f"line {n}\n" for n in range(int(args[0]))))
        sys.stdout.flush()
    elif mode == "numbered":  # COUNT numbered lines of 60 bytes, then a last one
        count = int(args[0])
        for start in range(0, count, 1000):
            sys.stdout.write("".join(f"{n:07d} {'.' * 51}\n"
                                     for n in range(start + 1, min(start + 1001, count + 1))))
            sys.stdout.flush()
        say("error: the final line")
    elif mode == "longline":
        say("x" * int(args[0]))
        say("short")
        sys.stdout.write("no newline at the end")
    elif mode == "env":
        say(json.dumps(dict(os.environ)))
    elif mode == "argv":
        say(json.dumps(list(args)))
    elif mode == "cwd":
        say(os.getcwd())
    elif mode == "signal":
        os.kill(os.getpid(), signal.SIGUSR1)
    elif mode == "identity":
        say(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                        "groups": os.getgroups(), "home": os.environ.get("HOME")}))
    elif mode == "snoop":
        snoop()
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(*sys.argv[1:])
