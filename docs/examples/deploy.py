"""The example deploy recipe: resolve a git ref, then rehearse a rollout in steps.

``python3 deploy.py SERVICE REF``; run by docs/examples/recipes.toml. It changes nothing:
it shows what a deploy's output looks like as it streams (stdout, stderr, exit code).
"""

import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent.parent
STEP_SECONDS = 0.3


def main(service: str, ref: str) -> int:
    print(f"deploying {service} at {ref}")
    found = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "--verify", "--quiet",
                            f"{ref}^{{commit}}"], capture_output=True, text=True)
    if found.returncode != 0:
        print(f"error: {ref} is not a commit of {REPOSITORY}", file=sys.stderr)
        return 1
    commit = found.stdout.strip()
    print(f"resolved {ref} to {commit[:12]}")
    for number, step in enumerate(["stop traffic", "install", "migrate", "start traffic"], 1):
        time.sleep(STEP_SECONDS)
        print(f"step {number}/4: {step} ({service})")
    print(f"warning: {service} was rehearsed, not deployed", file=sys.stderr)
    print(f"{service} is at {commit[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
