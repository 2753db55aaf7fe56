package oip

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/dataplane"
	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// ModelInfer runs a request on the data plane. Inputs come as raw_input_contents (as
// tritonclient and SONIC send them) or as typed contents; outputs go back as
// raw_output_contents (tritonclient's as_numpy reads only those), with the request's id, the
// parameters version in model_version, and parameters naming the deployment, parameters
// version and artifact sha256.
func (f *Front) ModelInfer(ctx context.Context, c Call, r *tritonpb.ModelInferRequest) (*tritonpb.ModelInferResponse, *rpcstatus.Error) {
	if e := f.admit(ctx, c, "ModelInfer", false); e != nil {
		return nil, e
	}
	run, e := selection(r.GetParameters())
	if e != nil {
		return nil, e
	}
	route, e := f.route(ctx, c, r.GetModelName(), r.GetModelVersion(), run)
	if e != nil {
		return nil, e
	}
	inputs, e := inputsOf(r)
	if e != nil {
		return nil, e
	}
	names := make([]string, len(r.GetOutputs()))
	for i, o := range r.GetOutputs() {
		if _, ok := o.GetParameters()["classification"]; ok {
			return nil, rpcstatus.InvalidField(fmt.Sprintf("output %q: the classification extension is not served", o.GetName()), "outputs")
		}
		names[i] = o.GetName()
	}
	served, outputs, e := f.Plane.Serve(ctx, route, &dataplane.Request{Inputs: inputs, OutputNames: names,
		Method: "ModelInfer", RequestID: c.RequestID})
	if e != nil {
		return nil, e
	}
	reply := &tritonpb.ModelInferResponse{ModelName: r.GetModelName(), ModelVersion: served.Version, Id: r.GetId(),
		Parameters: map[string]*tritonpb.InferParameter{
			"beamops_deployment":         stringParam(served.Deployment),
			"beamops_parameters_version": stringParam(served.Version),
			"beamops_artifact_sha256":    stringParam(served.ArtifactSHA256),
		},
		Outputs:           make([]*tritonpb.ModelInferResponse_InferOutputTensor, len(outputs)),
		RawOutputContents: make([][]byte, len(outputs))}
	for i, t := range outputs {
		reply.Outputs[i] = &tritonpb.ModelInferResponse_InferOutputTensor{Name: t.Name, Datatype: tensor.WireType(t.Dtype), Shape: t.Shape}
		reply.RawOutputContents[i] = t.Data
	}
	return reply, nil
}

func stringParam(v string) *tritonpb.InferParameter {
	return &tritonpb.InferParameter{ParameterChoice: &tritonpb.InferParameter_StringParam{StringParam: v}}
}

// selection reads the request parameters: a run (with a global tag, or the model's only
// global-tag deployment's) picks the parameters version by interval of validity.
func selection(params map[string]*tritonpb.InferParameter) (*routes.Selector, *rpcstatus.Error) {
	var s routes.Selector
	for name, p := range params {
		if !knownRequestParameters[name] {
			return nil, unknownParameter(name)
		}
		switch name {
		case "run":
			n, ok := integer(p)
			if !ok || n < 0 {
				return nil, rpcstatus.InvalidField("request parameter run must be a non-negative integer", "parameters")
			}
			s.Run = &n
		case "global_tag":
			v, ok := p.GetParameterChoice().(*tritonpb.InferParameter_StringParam)
			if !ok || v.StringParam == "" {
				return nil, rpcstatus.InvalidField("request parameter global_tag must be a non-empty string", "parameters")
			}
			s.GlobalTag = v.StringParam
		}
	}
	if s.Run == nil {
		if s.GlobalTag != "" {
			return nil, rpcstatus.InvalidField("request parameter global_tag needs run: the run whose conditions to use", "parameters")
		}
		return nil, nil
	}
	return &s, nil
}

func integer(p *tritonpb.InferParameter) (int64, bool) {
	switch v := p.GetParameterChoice().(type) {
	case *tritonpb.InferParameter_Int64Param:
		return v.Int64Param, true
	case *tritonpb.InferParameter_Uint64Param:
		return int64(v.Uint64Param), v.Uint64Param <= math.MaxInt64
	case *tritonpb.InferParameter_DoubleParam: // JSON numbers
		if math.Abs(v.DoubleParam) >= 1<<62 || v.DoubleParam != math.Trunc(v.DoubleParam) {
			return 0, false
		}
		return int64(v.DoubleParam), true
	}
	return 0, false
}

// inputsOf is the request's inputs as tensors: their raw bytes, or their typed contents as
// little-endian bytes.
func inputsOf(r *tritonpb.ModelInferRequest) ([]tensor.Tensor, *rpcstatus.Error) {
	raw := r.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(r.GetInputs()) {
		return nil, rpcstatus.InvalidField(fmt.Sprintf("%d inputs but %d raw_input_contents: give every input's bytes there, or none",
			len(r.GetInputs()), len(raw)), "raw_input_contents")
	}
	inputs := make([]tensor.Tensor, len(r.GetInputs()))
	for i, in := range r.GetInputs() {
		dtype, ok := tensor.FromWire(in.GetDatatype())
		if !ok || dtype == tensor.Bytes {
			return nil, rpcstatus.InvalidArgument(fmt.Sprintf("input %q: datatype %q is not served (numeric types and BOOL are)",
				in.GetName(), in.GetDatatype()), "inputs", in.GetName())
		}
		t := tensor.Tensor{Name: in.GetName(), Dtype: dtype, Shape: in.GetShape()}
		if len(raw) > 0 {
			if in.GetContents() != nil {
				return nil, rpcstatus.InvalidArgument(fmt.Sprintf("input %q: give its data in raw_input_contents or in contents, not both",
					in.GetName()), "inputs", in.GetName())
			}
			t.Data = raw[i]
		} else if in.GetContents() != nil {
			data, e := contentBytes(in.GetName(), dtype, in.GetContents())
			if e != nil {
				return nil, e
			}
			t.Data = data
		}
		inputs[i] = t
	}
	return inputs, nil
}

func contentBytes(name string, dtype int32, c *tritonpb.InferTensorContents) ([]byte, *rpcstatus.Error) {
	var out []byte
	switch dtype {
	case tensor.Bool:
		for _, v := range c.GetBoolContents() {
			b := byte(0)
			if v {
				b = 1
			}
			out = append(out, b)
		}
	case tensor.Int8, tensor.Int16, tensor.Int32:
		for _, v := range c.GetIntContents() {
			out = appendInt(out, dtype, int64(v))
		}
	case tensor.Int64:
		for _, v := range c.GetInt64Contents() {
			out = binary.LittleEndian.AppendUint64(out, uint64(v))
		}
	case tensor.Uint8, tensor.Uint16, tensor.Uint32:
		for _, v := range c.GetUintContents() {
			out = appendInt(out, dtype, int64(v))
		}
	case tensor.Uint64:
		for _, v := range c.GetUint64Contents() {
			out = binary.LittleEndian.AppendUint64(out, v)
		}
	case tensor.Float32:
		for _, v := range c.GetFp32Contents() {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	case tensor.Float64:
		for _, v := range c.GetFp64Contents() {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		}
	default:
		return nil, rpcstatus.InvalidArgument(fmt.Sprintf("input %q: %s comes in raw_input_contents only", name, tensor.WireType(dtype)),
			"inputs", name)
	}
	return out, nil
}

// appendInt appends v as the little-endian integer of dtype's width.
func appendInt(out []byte, dtype int32, v int64) []byte {
	switch dtype {
	case tensor.Int8, tensor.Uint8:
		return append(out, byte(v))
	case tensor.Int16, tensor.Uint16:
		return binary.LittleEndian.AppendUint16(out, uint16(v))
	}
	return binary.LittleEndian.AppendUint32(out, uint32(v))
}
