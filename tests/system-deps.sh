#!/usr/bin/env bash
# Install, from Debian's packages, the programs the tests start for real, when missing.
set -euo pipefail

need=()
command -v curl >/dev/null || need+=(curl)
# wrk: the benchmark harness's smoke test (tests/test_bench.py).
command -v wrk >/dev/null || need+=(wrk)
# nginx: the deployment test runs it (its own config, temp dir, free port; the system's
# nginx service is left alone). The package may not be on PATH for non-root users.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
# The recipe runner's tests: git for the example deploy recipe, python3 on PATH for recipes.
command -v git >/dev/null || need+=(git)
command -v python3 >/dev/null || need+=(python3)
# PostgreSQL's server binaries live off PATH, in /usr/lib/postgresql/<version>/bin.
command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
  || need+=(postgresql)
# The dashboard's browser test drives Debian's Chromium (never a downloaded browser).
[ -x /usr/bin/chromium ] || need+=(chromium)

bash "$(dirname "$0")/apt-install.sh" "${need[@]}"
