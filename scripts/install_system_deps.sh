#!/usr/bin/env bash
# Debian packages the integration tests start or build with for real. Installs only what is missing.
set -euo pipefail

missing=()
command -v xrootd >/dev/null 2>&1 || missing+=(xrootd-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
# The C++ client (clients/cpp): protoc, grpc_cpp_plugin and the gRPC/protobuf headers and libraries.
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v grpc_cpp_plugin >/dev/null 2>&1 || missing+=(protobuf-compiler-grpc)
[ -f /usr/include/google/protobuf/message.h ] || missing+=(libprotobuf-dev)
[ -f /usr/include/grpcpp/grpcpp.h ] || missing+=(libgrpc++-dev)
# The Java client (clients/java): the grpc-java code generator (Maven Central's binary was not served).
command -v grpc_java_plugin >/dev/null 2>&1 || missing+=(protobuf-compiler-grpc-java-plugin)
# perf_analyzer (scripts/install_perf_analyzer.sh) links libb64.
[ -e /usr/lib/x86_64-linux-gnu/libb64.so.0d ] || missing+=(libb64-0d)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
