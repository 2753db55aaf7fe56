package wire

import (
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// Field numbers of the responses.
const (
	predictOutputs = 1 // PredictResponse: 1 outputs, 2 deployment, 3 parameters
	predictTailDep = 2
	streamID       = 1 // PredictStreamResponse: 1 request_id, 2 status, 3 outputs, 4 deployment, 5 parameters
	streamStatus   = 2
	streamOutputs  = 3
	streamTailDep  = 4
)

// Tail is the constant end of a route's answers: deployment and parameters{model, version},
// encoded once per route for PredictResponse and for PredictStreamResponse.
type Tail struct {
	Predict, Stream []byte
}

// NewTail encodes the deployment and parameters fields of a route's answers.
func NewTail(deployment, model, version string) Tail {
	params := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), model)
	if model == "" {
		params = params[:0]
	}
	if version != "" {
		params = protowire.AppendString(protowire.AppendTag(params, 2, protowire.BytesType), version)
	}
	enc := func(dep protowire.Number) []byte {
		var b []byte
		if deployment != "" {
			b = protowire.AppendString(protowire.AppendTag(b, dep, protowire.BytesType), deployment)
		}
		b = protowire.AppendTag(b, dep+1, protowire.BytesType)
		return protowire.AppendBytes(b, params)
	}
	return Tail{Predict: enc(predictTailDep), Stream: enc(streamTailDep)}
}

func tensorSize(t *tensor.Tensor) int {
	n := 0
	if t.Name != "" {
		n += 1 + protowire.SizeBytes(len(t.Name))
	}
	if t.Dtype != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(t.Dtype)))
	}
	if len(t.Shape) > 0 {
		packed := 0
		for _, d := range t.Shape {
			packed += protowire.SizeVarint(uint64(d))
		}
		n += 1 + protowire.SizeBytes(packed)
	}
	if len(t.Data) > 0 {
		n += 1 + protowire.SizeBytes(len(t.Data))
	}
	return n
}

func appendTensor(p *Pieces, num protowire.Number, t *tensor.Tensor) {
	p.Tag(num, protowire.BytesType)
	p.Varint(uint64(tensorSize(t)))
	if t.Name != "" {
		p.String(1, t.Name)
	}
	if t.Dtype != 0 {
		p.Tag(2, protowire.VarintType)
		p.Varint(uint64(int64(t.Dtype)))
	}
	if len(t.Shape) > 0 {
		packed := 0
		for _, d := range t.Shape {
			packed += protowire.SizeVarint(uint64(d))
		}
		p.Tag(3, protowire.BytesType)
		p.Varint(uint64(packed))
		for _, d := range t.Shape {
			p.Varint(uint64(d))
		}
	}
	if len(t.Data) > 0 {
		p.Tag(4, protowire.BytesType)
		p.Varint(uint64(len(t.Data)))
		p.Data(t.Data)
	}
}

func headerRoom(outputs []tensor.Tensor, extra int) int {
	n := extra
	for i := range outputs {
		n += 32 + len(outputs[i].Name) + 10*len(outputs[i].Shape)
		if len(outputs[i].Data) <= InlineLimit {
			n += len(outputs[i].Data)
		}
	}
	return n
}

// PredictResponse encodes PredictResponse{outputs, deployment, parameters} (tail from NewTail).
func PredictResponse(outputs []tensor.Tensor, tail *Tail) mem.BufferSlice {
	p := NewPieces(headerRoom(outputs, len(tail.Predict)))
	for i := range outputs {
		appendTensor(p, predictOutputs, &outputs[i])
	}
	p.Bytes(tail.Predict)
	return p.Done()
}

// StreamOK encodes PredictStreamResponse{request_id, status{code: 0}, outputs, deployment,
// parameters}.
func StreamOK(requestID string, outputs []tensor.Tensor, tail *Tail) mem.BufferSlice {
	p := NewPieces(headerRoom(outputs, len(tail.Stream)+len(requestID)+8))
	if requestID != "" {
		p.String(streamID, requestID)
	}
	p.Tag(streamStatus, protowire.BytesType) // status set, code 0: an empty message
	p.Varint(0)
	for i := range outputs {
		appendTensor(p, streamOutputs, &outputs[i])
	}
	p.Bytes(tail.Stream)
	return p.Done()
}

// StreamStatus encodes PredictStreamResponse{request_id, status} (a failed request).
func StreamStatus(requestID string, st *spb.Status) mem.BufferSlice {
	b, err := proto.Marshal(&inferencev1.PredictStreamResponse{RequestId: requestID, Status: st})
	if err != nil { // a status with invalid UTF-8 in its message: send the code alone
		b, _ = proto.Marshal(&inferencev1.PredictStreamResponse{RequestId: requestID, Status: &spb.Status{Code: st.GetCode()}})
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}
}
