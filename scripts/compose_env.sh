#!/usr/bin/env bash
# Write .env for compose.yaml: random secrets, readable by you only (mode 600), never committed
# (.gitignore) nor copied into images (.dockerignore). Keeps an existing .env: PostgreSQL and
# MinIO take their passwords when their volumes are first made, so new ones would lock the
# services out (to start over: docker compose down -v, then rm .env).
#   scripts/compose_env.sh [path]      (default: .env next to compose.yaml)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_file="${1:-$root/.env}"
if [[ -e "$env_file" ]]; then
  echo "$env_file exists; keeping it"
  exit 0
fi
# Hex only: the PostgreSQL password goes into the registry's database URL unescaped.
random() { head -c "$1" /dev/urandom | od -An -v -tx1 | tr -d ' \n'; }
umask 077
cat > "$env_file" <<ENV
# Made by scripts/compose_env.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ); see .env.example.
POSTGRES_PASSWORD=$(random 24)
MINIO_ROOT_USER=beamops-$(random 4)
MINIO_ROOT_PASSWORD=$(random 24)
# Where beamops' ports are published: 127.0.0.1 (this machine only) unless you change it.
BEAMOPS_BIND=127.0.0.1
ENV
chmod 600 "$env_file"
echo "wrote $env_file (mode 600): POSTGRES_PASSWORD, MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, BEAMOPS_BIND"
