#!/usr/bin/env bash
# Builds beamops-gateway from nothing:
#   1. the Go stubs of the beamops protos (clients/go/gen/, and the protoc-gen-go /
#      protoc-gen-go-grpc plugins in clients/go/bin/) with scripts/generate_stubs.py --lang go;
#   2. the Go stubs of Triton's gRPC API into gen/triton/, from the descriptors that the
#      tritonclient Python package ships (no .proto files needed);
#   3. bin/beamops-gateway.
# Idempotent: every run regenerates and rebuilds. Any failure stops the build with a message.
# Environment: PYTHON (default: <repo>/.venv/bin/python), GO (default: go on PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
go="${GO:-go}"
triton_pkg="github.com/beamops/beamops/services/inference/gateway/gen/triton;tritonpb"

fail() { echo "build.sh: $*" >&2; exit 1; }
step() { echo "build.sh: $*" >&2; }

[[ -x "$python" ]] || fail "no Python at $python: run 'make install' (or set PYTHON)"
command -v "$go" >/dev/null 2>&1 || fail "'$go' is not on PATH: install Go (see go.mod for the version)"

step "1/3 beamops Go stubs (scripts/generate_stubs.py --lang go)"
(cd "$root" && "$python" scripts/generate_stubs.py --lang go) \
  || fail "generating the beamops Go stubs failed; see the messages above"
for plugin in protoc-gen-go protoc-gen-go-grpc; do
  [[ -x "$root/clients/go/bin/$plugin" ]] || fail "clients/go/bin/$plugin was not built by step 1"
done

step "2/3 Triton Go stubs (gen/triton/, from tritonclient's descriptors)"
rm -rf "$here/gen/triton"
mkdir -p "$here/gen/triton"
descriptors="$here/gen/triton/.triton.fds"
"$python" "$root/scripts/triton_descriptors.py" "$descriptors" >/dev/null \
  || fail "could not read Triton's descriptors from tritonclient (is tritonclient[grpc] installed in the venv?)"
"$python" -m grpc_tools.protoc \
  --descriptor_set_in="$descriptors" \
  --plugin=protoc-gen-go="$root/clients/go/bin/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$root/clients/go/bin/protoc-gen-go-grpc" \
  --go_out="$here/gen/triton" --go_opt=paths=source_relative \
  --go_opt="Mgrpc_service.proto=$triton_pkg" --go_opt="Mmodel_config.proto=$triton_pkg" \
  --go-grpc_out="$here/gen/triton" --go-grpc_opt=paths=source_relative \
  --go-grpc_opt="Mgrpc_service.proto=$triton_pkg" --go-grpc_opt="Mmodel_config.proto=$triton_pkg" \
  grpc_service.proto model_config.proto \
  || fail "protoc could not generate the Triton Go stubs; see the messages above"
rm -f "$descriptors"
[[ -f "$here/gen/triton/grpc_service_grpc.pb.go" ]] || fail "protoc wrote no gen/triton/grpc_service_grpc.pb.go"

step "3/3 go build bin/beamops-gateway"
(cd "$here" && "$go" build -trimpath -o bin/beamops-gateway ./cmd/beamops-gateway) \
  || fail "go build failed; see the messages above"
step "built $here/bin/beamops-gateway"
