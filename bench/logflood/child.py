"""``python child.py COUNT``: COUNT lines of 60 bytes, each with its number and the moment it
was written (``time.time()``), in chunks of 100 lines, flushed at once."""

import sys
import time

CHUNK = 100


def main(count: int) -> None:
    out = sys.stdout
    for start in range(1, count + 1, CHUNK):
        end = min(start + CHUNK, count + 1)
        now = time.time()
        # number, time, padding: 8 + 18 + 33 + newline = 60 bytes
        out.write("".join(f"{n:07d} {now:17.6f} {'.' * 33}\n" for n in range(start, end)))
        out.flush()


if __name__ == "__main__":
    main(int(sys.argv[1]))
