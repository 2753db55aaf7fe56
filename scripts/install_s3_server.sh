#!/usr/bin/env bash
# Builds the S3-compatible server the registry's S3 tests run against: SeaweedFS (Apache-2.0),
# `weed` binary, from the Go module proxy (no Docker). MinIO is AGPL and is not used.
#
# Idempotent: returns at once when <tools>/bin/weed exists and was
# built from the pinned version (recorded in <bin>.version). A cold build takes a few minutes.
#
#   BEAMOPS_TOOLS_DIR  (default <repo>/.tools): the binary goes to <tools>/bin/weed; the folder gets its
#                      own .gitignore ("*") so nothing in it is ever committed.
#   BEAMOPS_S3_NICE    (default 19): the build runs under `nice -n` this value.
# Needs `go` on PATH: the module asks for Go >= 1.26.6 (an older go downloads that toolchain itself
# when GOTOOLCHAIN=auto, the default). Cold: ~4-5 min on 2 cores, ~4 GB of Go module + build caches.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
tools="${BEAMOPS_TOOLS_DIR:-$root/.tools}"
[[ "$tools" == /* ]] || tools="$PWD/$tools"
module="github.com/seaweedfs/seaweedfs/weed"
version="v0.0.0-20261109003541-7506e5f91cd6"
bin="$tools/bin/weed"
stamp="$bin.version"

if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$module@$version" ]]; then
    exit 0
fi

command -v go >/dev/null 2>&1 || { echo "install_s3_server.sh: 'go' is not on PATH (needs Go >= 1.26.6)" >&2; exit 1; }

mkdir -p "$tools/bin"
[[ -f "$tools/.gitignore" ]] || printf '*\n' > "$tools/.gitignore"

echo "building $module@$version into $tools/bin (a few minutes) ..."
start=$SECONDS
# `go install module@version` refuses modules whose go.mod has replace directives (SeaweedFS has
# one), so download the module and build `./weed` inside its own folder, as its main module.
src="$(go mod download -json "github.com/seaweedfs/seaweedfs@$version" \
       | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$src" && -f "$src/go.mod" ]] || { echo "install_s3_server.sh: could not download the SeaweedFS module" >&2; exit 1; }
(cd "$src" && CGO_ENABLED=0 nice -n "${BEAMOPS_S3_NICE:-19}" \
    go build -trimpath -ldflags "-s -w" -o "$bin.partial" ./weed)
mv -f "$bin.partial" "$bin"
echo "$module@$version" > "$stamp"
echo "built $bin in $((SECONDS - start)) s"
