package triton

import (
	"fmt"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/wire"
)

// codec is the protobuf codec of the Triton connection with a fast path for ModelInfer that
// never copies tensor bytes in the gateway: a request's raw_input_contents go to gRPC as
// pieces of their own (aliasing the caller's request), and an answer's raw_output_contents,
// names and datatypes alias the one buffer the answer was read into. Everything else, and any
// part of a ModelInfer message the fast path does not read itself, goes through
// google.golang.org/protobuf: the decoded messages are complete either way.
type codec struct{}

var _ encoding.CodecV2 = codec{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if req, ok := v.(*tritonpb.ModelInferRequest); ok && plainRequest(req) {
		return encodeRequest(req), nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("triton codec: cannot marshal %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := data.Materialize() // ordinary memory: the answer's tensors alias it
	if resp, ok := v.(*tritonpb.ModelInferResponse); ok {
		return decodeResponse(buf, resp)
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("triton codec: cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(buf, m)
}

// plainRequest: only the fields the gateway sets (model_name, inputs{name, datatype, shape},
// outputs{name}, raw_input_contents).
func plainRequest(r *tritonpb.ModelInferRequest) bool {
	if r.ModelVersion != "" || r.Id != "" || len(r.Parameters) > 0 {
		return false
	}
	for _, in := range r.Inputs {
		if len(in.Parameters) > 0 || in.Contents != nil {
			return false
		}
	}
	for _, out := range r.Outputs {
		if len(out.Parameters) > 0 {
			return false
		}
	}
	return true
}

func encodeRequest(r *tritonpb.ModelInferRequest) mem.BufferSlice {
	room := 16 + len(r.ModelName)
	for _, in := range r.Inputs {
		room += 24 + len(in.Name) + len(in.Datatype) + 10*len(in.Shape)
	}
	for _, out := range r.Outputs {
		room += 8 + len(out.Name)
	}
	for _, raw := range r.RawInputContents {
		room += 6
		if len(raw) <= wire.InlineLimit {
			room += len(raw)
		}
	}
	p := wire.NewPieces(room)
	if r.ModelName != "" {
		p.String(1, r.ModelName)
	}
	for _, in := range r.Inputs {
		packed := 0
		for _, d := range in.Shape {
			packed += protowire.SizeVarint(uint64(d))
		}
		size := 0
		if in.Name != "" {
			size += 1 + protowire.SizeBytes(len(in.Name))
		}
		if in.Datatype != "" {
			size += 1 + protowire.SizeBytes(len(in.Datatype))
		}
		if len(in.Shape) > 0 {
			size += 1 + protowire.SizeBytes(packed)
		}
		p.Tag(5, protowire.BytesType)
		p.Varint(uint64(size))
		if in.Name != "" {
			p.String(1, in.Name)
		}
		if in.Datatype != "" {
			p.String(2, in.Datatype)
		}
		if len(in.Shape) > 0 {
			p.Tag(3, protowire.BytesType)
			p.Varint(uint64(packed))
			for _, d := range in.Shape {
				p.Varint(uint64(d))
			}
		}
	}
	for _, out := range r.Outputs {
		p.Tag(6, protowire.BytesType)
		if out.Name == "" {
			p.Varint(0)
			continue
		}
		p.Varint(uint64(1 + protowire.SizeBytes(len(out.Name))))
		p.String(1, out.Name)
	}
	for _, raw := range r.RawInputContents {
		p.Tag(7, protowire.BytesType)
		p.Varint(uint64(len(raw)))
		p.Data(raw)
	}
	return p.Done()
}

// decodeResponse reads model_name, model_version, id, outputs and raw_output_contents itself
// (aliasing buf); any other field (parameters, unknown fields) and any output tensor with
// parameters or contents are decoded by google.golang.org/protobuf.
func decodeResponse(buf []byte, r *tritonpb.ModelInferResponse) error {
	proto.Reset(r)
	var rest []byte
	for b := buf; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		field := b
		b = b[n:]
		if typ == protowire.BytesType && num >= 1 && num <= 6 && num != 4 {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			b = b[m:]
			switch num {
			case 1, 2, 3:
				s, ok := aliasString(v)
				if !ok {
					return fmt.Errorf("triton codec: invalid UTF-8 in field %d", num)
				}
				switch num {
				case 1:
					r.ModelName = s
				case 2:
					r.ModelVersion = s
				default:
					r.Id = s
				}
			case 5:
				out, err := decodeOutput(v)
				if err != nil {
					return err
				}
				r.Outputs = append(r.Outputs, out)
			case 6:
				r.RawOutputContents = append(r.RawOutputContents, v)
			}
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		b = b[m:]
		rest = append(rest, field[:n+m]...)
	}
	if len(rest) > 0 {
		return proto.UnmarshalOptions{Merge: true}.Unmarshal(rest, r)
	}
	return nil
}

func decodeOutput(buf []byte) (*tritonpb.ModelInferResponse_InferOutputTensor, error) {
	out := &tritonpb.ModelInferResponse_InferOutputTensor{}
	for b := buf; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 2) && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			s, ok := aliasString(v)
			if !ok {
				return nil, fmt.Errorf("triton codec: invalid UTF-8 in an output's field %d", num)
			}
			if num == 1 {
				out.Name = s
			} else {
				out.Datatype = s
			}
			b = b[m:]
		case num == 3 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			if out.Shape == nil {
				out.Shape = make([]int64, 0, 4)
			}
			for len(v) > 0 {
				d, k := protowire.ConsumeVarint(v)
				if k < 0 {
					return nil, protowire.ParseError(k)
				}
				out.Shape = append(out.Shape, int64(d))
				v = v[k:]
			}
			b = b[m:]
		case num == 3 && typ == protowire.VarintType:
			d, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			out.Shape = append(out.Shape, int64(d))
			b = b[m:]
		default: // parameters, contents or unknown: let protobuf decode the whole tensor
			full := &tritonpb.ModelInferResponse_InferOutputTensor{}
			if err := proto.Unmarshal(buf, full); err != nil {
				return nil, err
			}
			return full, nil
		}
	}
	return out, nil
}

func aliasString(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", true
	}
	if !utf8.Valid(b) {
		return "", false
	}
	return unsafe.String(&b[0], len(b)), true
}
