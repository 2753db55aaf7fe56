// Package wire reads PredictRequest / PredictStreamRequest and writes PredictResponse /
// PredictStreamResponse in protobuf wire format by hand, so that tensor bytes are never copied:
// a parsed tensor's Data (and its strings) alias the received buffer, and an encoded response
// is a list of pieces whose tensor data alias Triton's answer. The buffers are ordinary Go
// memory that is never written after it is filled, so aliasing is safe for as long as
// anything refers to it.
//
// Parsing follows protobuf's rules (proto3, as google.golang.org/protobuf and upb do): the last
// value of a scalar field wins, the last member of a oneof wins, packed and unpacked repeated
// numbers are both read, unknown fields and fields with an unexpected wire type are skipped,
// and strings must be valid UTF-8. A message that does not parse is an error (INVALID_ARGUMENT
// for its caller).
package wire

import (
	"errors"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// ErrMalformed is returned for bytes that are not a valid message.
var ErrMalformed = errors.New("malformed protobuf message")

// Route of a request: which member of the `route` oneof it set last.
type Route uint8

const (
	RouteNone Route = iota
	RouteDeployment
	RouteModel
)

// Request is a PredictRequest or a PredictStreamRequest.
type Request struct {
	RequestID   string // PredictStreamRequest only
	Route       Route
	Deployment  string   // when Route == RouteDeployment
	Selector    Selector // when Route == RouteModel
	Inputs      []tensor.Tensor
	OutputNames []string
}

// Selector is a ModelSelector: a model, narrowed by at most one of version, alias or run.
type Selector struct {
	Model, Version, Alias string
	GlobalTag             string
	Run                   *int64 // with GlobalTag: a run (resolved by the control plane)
}

type fieldNumbers struct {
	requestID, deployment, model, inputs, outputNames protowire.Number
}

var (
	predictFields = fieldNumbers{requestID: 0, deployment: 1, model: 2, inputs: 3, outputNames: 4}
	streamFields  = fieldNumbers{requestID: 1, deployment: 2, model: 3, inputs: 4, outputNames: 5}
)

// ParsePredict reads a PredictRequest into r (reusing its slices).
func ParsePredict(buf []byte, r *Request) error { return parse(buf, r, &predictFields) }

// ParseStream reads a PredictStreamRequest into r (reusing its slices).
func ParseStream(buf []byte, r *Request) error { return parse(buf, r, &streamFields) }

func parse(buf []byte, r *Request, f *fieldNumbers) error {
	*r = Request{Inputs: r.Inputs[:0], OutputNames: r.OutputNames[:0]}
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return ErrMalformed
		}
		buf = buf[n:]
		if typ == protowire.BytesType && num != 0 {
			v, m := protowire.ConsumeBytes(buf)
			if m < 0 {
				return ErrMalformed
			}
			switch num {
			case f.requestID:
				s, ok := str(v)
				if !ok {
					return ErrMalformed
				}
				r.RequestID = s
				buf = buf[m:]
				continue
			case f.deployment:
				s, ok := str(v)
				if !ok {
					return ErrMalformed
				}
				r.Route, r.Deployment, r.Selector = RouteDeployment, s, Selector{}
				buf = buf[m:]
				continue
			case f.model:
				// Parsed as the service parses it, so that a message it refuses is never
				// served here.
				var sel inferencev1.ModelSelector
				if err := proto.Unmarshal(v, &sel); err != nil {
					return ErrMalformed
				}
				r.Route, r.Deployment = RouteModel, ""
				r.Selector = Selector{Model: sel.GetModel(), Version: sel.GetParametersVersion(),
					Alias: sel.GetAlias()}
				if gr := sel.GetGlobalTagRun(); gr != nil {
					run := int64(gr.GetRun())
					r.Selector.GlobalTag, r.Selector.Run = gr.GetGlobalTag(), &run
				}
				buf = buf[m:]
				continue
			case f.inputs:
				r.Inputs = append(r.Inputs, tensor.Tensor{})
				if err := parseTensor(v, &r.Inputs[len(r.Inputs)-1]); err != nil {
					return err
				}
				buf = buf[m:]
				continue
			case f.outputNames:
				s, ok := str(v)
				if !ok {
					return ErrMalformed
				}
				r.OutputNames = append(r.OutputNames, s)
				buf = buf[m:]
				continue
			}
		}
		m := protowire.ConsumeFieldValue(num, typ, buf)
		if m < 0 {
			return ErrMalformed
		}
		buf = buf[m:]
	}
	return nil
}

// parseTensor reads a beamops.common.v1.Tensor (1 name, 2 dtype, 3 shape, 4 raw_data).
func parseTensor(buf []byte, t *tensor.Tensor) error {
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return ErrMalformed
		}
		buf = buf[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(buf)
			if m < 0 {
				return ErrMalformed
			}
			s, ok := str(v)
			if !ok {
				return ErrMalformed
			}
			t.Name = s
			buf = buf[m:]
		case num == 2 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(buf)
			if m < 0 {
				return ErrMalformed
			}
			t.Dtype = int32(v)
			buf = buf[m:]
		case num == 3 && typ == protowire.BytesType: // packed
			v, m := protowire.ConsumeBytes(buf)
			if m < 0 {
				return ErrMalformed
			}
			if t.Shape == nil {
				t.Shape = make([]int64, 0, len(v)) // at most one value per byte
			}
			for len(v) > 0 {
				d, k := protowire.ConsumeVarint(v)
				if k < 0 {
					return ErrMalformed
				}
				t.Shape = append(t.Shape, int64(d))
				v = v[k:]
			}
			buf = buf[m:]
		case num == 3 && typ == protowire.VarintType:
			d, m := protowire.ConsumeVarint(buf)
			if m < 0 {
				return ErrMalformed
			}
			t.Shape = append(t.Shape, int64(d))
			buf = buf[m:]
		case num == 4 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(buf)
			if m < 0 {
				return ErrMalformed
			}
			t.Data = v
			buf = buf[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, buf)
			if m < 0 {
				return ErrMalformed
			}
			buf = buf[m:]
		}
	}
	return nil
}

// str is the bytes as a string sharing their memory (the buffer is never written again), and
// whether they are valid UTF-8.
func str(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", true
	}
	if !utf8.Valid(b) {
		return "", false
	}
	return unsafe.String(&b[0], len(b)), true
}
