"""Writes Triton's gRPC API (grpc_service.proto, model_config.proto) as a FileDescriptorSet, from
the descriptors the tritonclient Python package ships: Triton's .proto files are not in this
repository. Used by services/inference/gateway/build.sh (Go stubs) and clients/cpp-sonic's
CMakeLists.txt (C++ stubs).

    python triton_descriptors.py OUT.fds      # prints the proto file names, one a line
"""

import sys

from google.protobuf import descriptor_pb2
from tritonclient.grpc import model_config_pb2, service_pb2

files = descriptor_pb2.FileDescriptorSet()
for module in (model_config_pb2, service_pb2):  # dependencies first
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    files.file.append(proto)
with open(sys.argv[1], "wb") as out:
    out.write(files.SerializeToString())
print(model_config_pb2.DESCRIPTOR.name)
print(service_pb2.DESCRIPTOR.name)
