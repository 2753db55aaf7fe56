package triton

import "google.golang.org/grpc/mem"

func memSlice(b []byte) mem.BufferSlice { return mem.BufferSlice{mem.SliceBuffer(b)} }
