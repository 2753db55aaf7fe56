// Package rawcodec is the gRPC codec of the gateway's server and of its forwarding client:
// messages travel as raw bytes (a Frame) without being decoded, so a forwarded call costs no
// protobuf work and no copy in the gateway. Proto messages still work (encoded with
// google.golang.org/protobuf), for the few the gateway writes itself.
package rawcodec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Name is the codec's name: "proto", so that the content-type stays application/grpc+proto
// (the bytes are protobuf; only the gateway does not decode them).
const Name = "proto"

// Frame is one message as bytes. After RecvMsg it holds a reference to gRPC's buffers: pass it
// to SendMsg (which takes that reference over) or call Free.
type Frame struct {
	Data mem.BufferSlice
}

// Bytes is the message as one slice of ordinary memory (copied from gRPC's buffers).
func (f *Frame) Bytes() []byte { return f.Data.Materialize() }

// Free gives the buffers back to gRPC's pool.
func (f *Frame) Free() {
	f.Data.Free()
	f.Data = nil
}

// FromBytes is a Frame of ordinary memory.
func FromBytes(b []byte) *Frame { return &Frame{Data: mem.BufferSlice{mem.SliceBuffer(b)}} }

// Codec implements encoding.CodecV2 for *Frame and proto.Message.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

func (Codec) Name() string { return Name }

func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *Frame:
		data := m.Data
		m.Data = nil // gRPC frees it once written
		return data, nil
	case proto.Message:
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return nil, fmt.Errorf("rawcodec: cannot marshal %T", v)
}

func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *Frame:
		data.Ref() // gRPC frees data when Unmarshal returns; the Frame keeps its own reference
		m.Data = data
		return nil
	case proto.Message:
		return proto.Unmarshal(data.Materialize(), m)
	}
	return fmt.Errorf("rawcodec: cannot unmarshal into %T", v)
}
