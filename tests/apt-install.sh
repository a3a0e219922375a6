#!/usr/bin/env bash
# Install the Debian packages named as arguments (none: nothing to do). Root only.
set -euo pipefail
[ $# -gt 0 ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing programs: $*; install them (apt-get install $*) or run as root" >&2
  exit 1
fi
echo "installing $*"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
