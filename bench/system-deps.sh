#!/usr/bin/env bash
# Install, from Debian's packages, the programs the benchmarks start, when missing:
# redis-server (Flask-SSE's pub/sub), wrk (request rates), PostgreSQL (the Supabase path,
# under the tests' PostgREST stand-in).
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v wrk >/dev/null || need+=(wrk)
command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
  || need+=(postgresql)

bash "$(dirname "$0")/../tests/apt-install.sh" "${need[@]}"
