#!/usr/bin/env bash
# Debian packages the integration tests start for real. Installs only what is missing.
set -euo pipefail

missing=()
command -v xrootd >/dev/null 2>&1 || missing+=(xrootd-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
