package oiphttp

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/oip"
)

// inferRequest is the JSON of an infer request (numbers decoded as json.Number).
type inferRequest struct {
	ID         *string        `json:"id"`
	Parameters map[string]any `json:"parameters"`
	Inputs     []inferInput   `json:"inputs"`
	Outputs    []inferOutput  `json:"outputs"`
}

type inferInput struct {
	Name       string          `json:"name"`
	Datatype   string          `json:"datatype"`
	Shape      []int64         `json:"shape"`
	Parameters map[string]any  `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type inferOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters"`
}

// infer is POST /v2/models/{name}[/versions/{v}]/infer.
func (s *server) infer(w http.ResponseWriter, r *http.Request, c oip.Call) {
	// The caller is checked before its body is read: an unknown caller costs no memory.
	if e := s.front.Admit(r.Context(), c, "ModelInfer"); e != nil {
		fail(w, e)
		return
	}
	body, herr := s.readBody(w, r)
	if herr != nil {
		writeError(w, herr.status, herr.msg)
		return
	}
	req, plan, herr := parseInfer(r, body)
	if herr != nil {
		writeError(w, herr.status, herr.msg)
		return
	}
	resp, e := s.front.ModelInfer(r.Context(), c, req)
	if e != nil {
		fail(w, e)
		return
	}
	writeInfer(w, resp, plan)
}

// answerPlan is what the answer needs of the request beyond what the Front returns.
type answerPlan struct {
	hasID         bool
	binaryOf      map[string]bool // parameters.binary_data of the outputs asked for that set it
	defaultBinary bool            // the request parameter binary_data_output
}

// binary is Triton's rule: an output's own binary_data, else binary_data_output.
func (p *answerPlan) binary(name string) bool {
	if b, ok := p.binaryOf[name]; ok {
		return b
	}
	return p.defaultBinary
}

// parseInfer is the request as ModelInferRequest (every input's bytes in raw_input_contents),
// and what its answer needs.
func parseInfer(r *http.Request, body []byte) (*tritonpb.ModelInferRequest, *answerPlan, *httpError) {
	header, rest := body, []byte(nil)
	if h := r.Header.Get(HeaderLengthHeader); h != "" {
		n, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil || n < 0 || n > len(body) {
			return nil, nil, badRequest("%s %q is not a length within the body (%d bytes)", HeaderLengthHeader, h, len(body))
		}
		header, rest = body[:n], body[n:]
	}
	var in inferRequest
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return nil, nil, badRequest("%s", jsonMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, badRequest("the request JSON has more after its object")
	}
	req := &tritonpb.ModelInferRequest{ModelName: r.PathValue("name"), ModelVersion: r.PathValue("version"),
		Inputs: make([]*tritonpb.ModelInferRequest_InferInputTensor, len(in.Inputs)), RawInputContents: make([][]byte, len(in.Inputs))}
	plan := &answerPlan{hasID: in.ID != nil, binaryOf: map[string]bool{}}
	if in.ID != nil {
		req.Id = *in.ID
	}
	if len(in.Parameters) > 0 {
		req.Parameters = make(map[string]*tritonpb.InferParameter, len(in.Parameters))
		for k, v := range in.Parameters {
			p, ok := inferParameter(v)
			if !ok {
				return nil, nil, badRequest("request parameter %q must be a boolean, a number or a string", k)
			}
			req.Parameters[k] = p
		}
		if v, ok := in.Parameters["binary_data_output"]; ok {
			if plan.defaultBinary, ok = v.(bool); !ok {
				return nil, nil, badRequest("request parameter binary_data_output must be a boolean")
			}
		}
	}
	offset := 0
	for i, t := range in.Inputs {
		req.Inputs[i] = &tritonpb.ModelInferRequest_InferInputTensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		if sharedMemory(t.Parameters) {
			return nil, nil, badRequest("input %q: shared memory is not served: send the data in the request", t.Name)
		}
		hasData := len(t.Data) > 0 && string(t.Data) != "null"
		size, binaryIn := t.Parameters["binary_data_size"]
		switch {
		case binaryIn && hasData:
			return nil, nil, badRequest("input %q has both data and parameters.binary_data_size", t.Name)
		case binaryIn:
			n, ok := count(size)
			if !ok {
				return nil, nil, badRequest("input %q: parameters.binary_data_size must be a non-negative integer", t.Name)
			}
			if n > int64(len(rest)-offset) {
				return nil, nil, badRequest("input %q: binary_data_size %d, but only %d bytes of binary data are left after the JSON header",
					t.Name, n, len(rest)-offset)
			}
			req.RawInputContents[i] = rest[offset : offset+int(n) : offset+int(n)]
			offset += int(n)
		case hasData:
			raw, e := rawFromJSON(t.Name, t.Datatype, t.Data)
			if e != nil {
				return nil, nil, e
			}
			req.RawInputContents[i] = raw
		default:
			return nil, nil, badRequest("input %q has no data: give data, or parameters.binary_data_size and its bytes after the JSON", t.Name)
		}
	}
	if offset != len(rest) {
		return nil, nil, badRequest("%d bytes of binary data follow the JSON header, but the inputs' binary_data_size add up to %d",
			len(rest), offset)
	}
	for _, o := range in.Outputs {
		if sharedMemory(o.Parameters) {
			return nil, nil, badRequest("output %q: shared memory is not served", o.Name)
		}
		out := &tritonpb.ModelInferRequest_InferRequestedOutputTensor{Name: o.Name}
		if v, ok := o.Parameters["classification"]; ok { // passed on: the Front says it is not served
			p, _ := inferParameter(v)
			if p == nil {
				p = &tritonpb.InferParameter{}
			}
			out.Parameters = map[string]*tritonpb.InferParameter{"classification": p}
		}
		if v, ok := o.Parameters["binary_data"]; ok {
			b, isBool := v.(bool)
			if !isBool {
				return nil, nil, badRequest("output %q: parameters.binary_data must be a boolean", o.Name)
			}
			plan.binaryOf[o.Name] = b
		}
		req.Outputs = append(req.Outputs, out)
	}
	return req, plan, nil
}

func sharedMemory(params map[string]any) bool {
	for k := range params {
		if strings.HasPrefix(k, "shared_memory_") {
			return true
		}
	}
	return false
}

// inferParameter is a JSON parameter value: bool, string, an integral number (int64, or uint64
// beyond), or another number (double).
func inferParameter(v any) (*tritonpb.InferParameter, bool) {
	switch v := v.(type) {
	case bool:
		return &tritonpb.InferParameter{ParameterChoice: &tritonpb.InferParameter_BoolParam{BoolParam: v}}, true
	case string:
		return &tritonpb.InferParameter{ParameterChoice: &tritonpb.InferParameter_StringParam{StringParam: v}}, true
	case json.Number:
		if n, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			return &tritonpb.InferParameter{ParameterChoice: &tritonpb.InferParameter_Int64Param{Int64Param: n}}, true
		}
		if n, err := strconv.ParseUint(v.String(), 10, 64); err == nil {
			return &tritonpb.InferParameter{ParameterChoice: &tritonpb.InferParameter_Uint64Param{Uint64Param: n}}, true
		}
		if f, err := v.Float64(); err == nil {
			return &tritonpb.InferParameter{ParameterChoice: &tritonpb.InferParameter_DoubleParam{DoubleParam: f}}, true
		}
	}
	return nil, false
}

// count is a JSON number that is a non-negative integer.
func count(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	return i, err == nil && i >= 0
}

// writeInfer writes the answer: JSON, with the binary outputs' bytes after it when there are
// any. An output asked for as JSON goes binary when JSON cannot carry it (FP16, NaN, ...);
// tritonclient reads either.
func writeInfer(w http.ResponseWriter, resp *tritonpb.ModelInferResponse, plan *answerPlan) {
	b := make([]byte, 0, 256)
	b = append(b, `{"model_name":`...)
	b = appendString(b, resp.GetModelName())
	b = append(b, `,"model_version":`...)
	b = appendString(b, resp.GetModelVersion())
	if plan.hasID {
		b = append(b, `,"id":`...)
		b = appendString(b, resp.GetId())
	}
	if params := resp.GetParameters(); len(params) > 0 {
		b = append(b, `,"parameters":`...)
		b = appendParameters(b, params)
	}
	b = append(b, `,"outputs":[`...)
	var pieces [][]byte
	raw := resp.GetRawOutputContents()
	for i, o := range resp.GetOutputs() {
		var data []byte
		if i < len(raw) {
			data = raw[i]
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, o.GetName())
		b = append(b, `,"datatype":`...)
		b = appendString(b, o.GetDatatype())
		b = append(b, `,"shape":[`...)
		for j, d := range o.GetShape() {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, ']')
		if !plan.binary(o.GetName()) {
			mark := len(b)
			var ok bool
			if b, ok = appendJSONData(append(b, `,"data":`...), o.GetDatatype(), data); ok {
				b = append(b, '}')
				continue
			}
			b = b[:mark]
		}
		b = append(b, `,"parameters":{"binary_data_size":`...)
		b = strconv.AppendInt(b, int64(len(data)), 10)
		b = append(b, "}}"...)
		pieces = append(pieces, data)
	}
	b = append(b, "]}"...)
	if len(pieces) == 0 {
		writeRaw(w, http.StatusOK, "application/json", b)
		return
	}
	w.Header().Set(HeaderLengthHeader, strconv.Itoa(len(b)))
	for _, p := range pieces {
		b = append(b, p...)
	}
	writeRaw(w, http.StatusOK, "application/octet-stream", b)
}

// appendParameters writes response parameters as plain JSON values, by name.
func appendParameters(b []byte, params map[string]*tritonpb.InferParameter) []byte {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	b = append(b, '{')
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		switch v := params[k].GetParameterChoice().(type) {
		case *tritonpb.InferParameter_BoolParam:
			b = strconv.AppendBool(b, v.BoolParam)
		case *tritonpb.InferParameter_Int64Param:
			b = strconv.AppendInt(b, v.Int64Param, 10)
		case *tritonpb.InferParameter_Uint64Param:
			b = strconv.AppendUint(b, v.Uint64Param, 10)
		case *tritonpb.InferParameter_StringParam:
			b = appendString(b, v.StringParam)
		case *tritonpb.InferParameter_DoubleParam:
			if math.IsNaN(v.DoubleParam) || math.IsInf(v.DoubleParam, 0) {
				b = append(b, "null"...)
			} else {
				b = strconv.AppendFloat(b, v.DoubleParam, 'g', -1, 64)
			}
		default:
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}
