package oiphttp

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/dataplane"
	"github.com/beamops/beamops/services/inference/gateway/internal/oip"
	"github.com/beamops/beamops/services/inference/gateway/internal/oip/oiptest"
	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

const limit = 1 << 16

type fakeAuth struct{}

func (fakeAuth) Check(_ context.Context, authorization, _ string) *rpcstatus.Error {
	if authorization == "Bearer good" {
		return nil
	}
	return rpcstatus.New(codes.Unauthenticated, "the token is not valid")
}

// Guard never refuses (REST has no long streams).
func (fakeAuth) Guard(ctx context.Context, _ func() *rpcstatus.Error) *rpcstatus.Error {
	<-ctx.Done()
	return nil
}

func (fakeAuth) CheckCertificate(_ context.Context, subject, _ string) *rpcstatus.Error {
	if subject == "CN=cms-hlt,O=CERN" {
		return nil
	}
	return rpcstatus.New(codes.Unauthenticated, "the client certificate stands for no principal here")
}

// fakeInfer is the model: y = [sum of the row of x, x[0] of the row] for x FP32 [rows, 4]; a row
// starting with -999 makes it fail unexpectedly.
func fakeInfer(_ context.Context, _ string, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error) {
	x := inputs[0]
	rows := x.Shape[0]
	y := make([]byte, 0, rows*8)
	for r := int64(0); r < rows; r++ {
		row := decodeF32(x.Data[r*16 : r*16+16])
		if row[0] == -999 {
			return nil, rpcstatus.Internal("ModelInfer", "test")
		}
		y = binary.LittleEndian.AppendUint32(y, math.Float32bits(row[0]+row[1]+row[2]+row[3]))
		y = binary.LittleEndian.AppendUint32(y, math.Float32bits(row[0]))
	}
	return []tensor.Tensor{{Name: "y", Dtype: tensor.Float32, Shape: []int64{rows, 2}, Data: y}}, nil
}

// want is fakeInfer's y for x, as float32 arithmetic gives it.
func want(x [][]float32) []float32 {
	var y []float32
	for _, row := range x {
		y = append(y, row[0]+row[1]+row[2]+row[3], row[0])
	}
	return y
}

func newFront(install bool) *oip.Front {
	store := routes.NewStore(nil, nil)
	if install {
		f32 := commonv1.DataType_DATA_TYPE_FLOAT32
		store.Install(1, []*inferencev1.GatewayRoute{{
			Deployment: "jets", Model: "jets", ParametersVersion: "1.2", TritonModel: "jets__1_2", ArtifactSha256: "abc",
			Inputs:       []*commonv1.TensorSpec{{Name: "x", Dtype: f32, Shape: []int64{-1, 4}}},
			Outputs:      []*commonv1.TensorSpec{{Name: "y", Dtype: f32, Shape: []int64{-1, 2}}},
			MaxBatchSize: 64,
		}})
	}
	stats := dataplane.NewStatistics()
	plane := &dataplane.Plane{Routes: store, Infer: fakeInfer, Retryable: func(*rpcstatus.Error) bool { return false }, Stats: stats}
	return &oip.Front{Routes: store, Plane: plane, Auth: fakeAuth{}, Stats: stats, Version: "test"}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %q", r.status, err, r.body)
	}
	return m
}

func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	msg, ok := r.json(t)["error"].(string)
	if !ok {
		t.Fatalf("no error message in %q", r.body)
	}
	return msg
}

func do(t *testing.T, h http.Handler, method, path string, body []byte, header ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer good")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get(RequestIDHeader) == "" {
		t.Errorf("%s %s: no %s", method, path, RequestIDHeader)
	}
	return response{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func rowsOf(n int) [][]float32 {
	x := make([][]float32, n)
	for i := range x {
		x[i] = []float32{float32(i) + 0.25, -1.5 * float32(i), 3.125, float32(i * i)}
	}
	return x
}

func f32Bytes(x [][]float32) []byte {
	var b []byte
	for _, row := range x {
		for _, v := range row {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	return b
}

func decodeF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// jsonFloats reads a JSON "data" list as float32s.
func jsonFloats(t *testing.T, v any) []float32 {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("data is %T, not a list", v)
	}
	out := make([]float32, len(list))
	for i, e := range list {
		f, err := strconv.ParseFloat(string(e.(json.Number)), 32)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = float32(f)
	}
	return out
}

func equal(t *testing.T, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("y = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("y[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func output(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	outs, ok := m["outputs"].([]any)
	if !ok || len(outs) != 1 {
		t.Fatalf("outputs: %v", m["outputs"])
	}
	return outs[0].(map[string]any)
}

func TestInferJSON(t *testing.T) {
	h := Handler(newFront(true), limit)
	for _, n := range []int{1, 8} {
		x := rowsOf(n)
		body, _ := json.Marshal(map[string]any{"id": "req-7", "inputs": []any{map[string]any{
			"name": "x", "datatype": "FP32", "shape": []int{n, 4}, "data": x}}}) // nested lists
		r := do(t, h, "POST", "/v2/models/jets/infer", body, RequestIDHeader, "my-id.1")
		if r.status != 200 || r.header.Get("Content-Type") != "application/json" || r.header.Get(HeaderLengthHeader) != "" {
			t.Fatalf("batch %d: %d %v %s", n, r.status, r.header, r.body)
		}
		if got := r.header.Get(RequestIDHeader); got != "my-id.1" {
			t.Errorf("request id %q", got)
		}
		m := r.json(t)
		params, _ := m["parameters"].(map[string]any)
		if m["model_name"] != "jets" || m["model_version"] != "1.2" || m["id"] != "req-7" ||
			params["beamops_deployment"] != "jets" || params["beamops_artifact_sha256"] != "abc" {
			t.Errorf("answer %s", r.body)
		}
		o := output(t, m)
		if o["name"] != "y" || o["datatype"] != "FP32" || fmt.Sprint(o["shape"]) != fmt.Sprintf("[%d 2]", n) {
			t.Errorf("output %v", o)
		}
		equal(t, jsonFloats(t, o["data"]), want(x))
	}
	// A flat list, the version in the path (both forms), no id: none in the answer.
	x := rowsOf(2)
	flat := []float32{}
	for _, row := range x {
		flat = append(flat, row...)
	}
	body, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "x", "datatype": "FP32", "shape": []int{2, 4}, "data": flat}},
		"outputs": []any{map[string]any{"name": "y"}}})
	for _, path := range []string{"/v2/models/jets/versions/1.2/infer", "/v2/models/jets/versions/1000002/infer"} {
		r := do(t, h, "POST", path, body, RequestIDHeader, "bad id!")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		m := r.json(t)
		if _, ok := m["id"]; ok {
			t.Errorf("id in %s", r.body)
		}
		equal(t, jsonFloats(t, output(t, m)["data"]), want(x))
		if id := r.header.Get(RequestIDHeader); !rpcstatus.ValidRequestID(id) || id == "bad id!" {
			t.Errorf("request id %q", id)
		}
	}
}

// binaryBody is a request as tritonclient.http sends it: the JSON, then the inputs' bytes.
func binaryBody(t *testing.T, header map[string]any, data []byte) ([]byte, string) {
	t.Helper()
	j, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return append(j, data...), strconv.Itoa(len(j))
}

func binaryInput(n int) map[string]any {
	return map[string]any{"name": "x", "datatype": "FP32", "shape": []int{n, 4}, "parameters": map[string]any{"binary_data_size": n * 16}}
}

func TestInferBinary(t *testing.T) {
	h := Handler(newFront(true), limit)
	x := rowsOf(3)
	cases := map[string]map[string]any{
		"binary_data":        {"inputs": []any{binaryInput(3)}, "outputs": []any{map[string]any{"name": "y", "parameters": map[string]any{"binary_data": true}}}},
		"binary_data_output": {"inputs": []any{binaryInput(3)}, "parameters": map[string]any{"binary_data_output": true}},
	}
	for name, header := range cases {
		body, n := binaryBody(t, header, f32Bytes(x))
		r := do(t, h, "POST", "/v2/models/jets/infer", body, HeaderLengthHeader, n)
		if r.status != 200 || r.header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("%s: %d %v %s", name, r.status, r.header, r.body)
		}
		jl, err := strconv.Atoi(r.header.Get(HeaderLengthHeader))
		if err != nil || jl > len(r.body) {
			t.Fatalf("%s: %s %q", name, HeaderLengthHeader, r.header.Get(HeaderLengthHeader))
		}
		o := output(t, response{r.status, r.header, r.body[:jl]}.json(t))
		params, _ := o["parameters"].(map[string]any)
		if _, ok := o["data"]; ok || params["binary_data_size"] != json.Number("24") || len(r.body)-jl != 24 {
			t.Fatalf("%s: output %v, %d binary bytes", name, o, len(r.body)-jl)
		}
		equal(t, decodeF32(r.body[jl:]), want(x))
	}
}

func TestInferBinaryInJSONOut(t *testing.T) {
	h := Handler(newFront(true), limit)
	x := rowsOf(5)
	body, n := binaryBody(t, map[string]any{"inputs": []any{binaryInput(5)},
		"parameters": map[string]any{"binary_data_output": true}, // the output's own binary_data wins
		"outputs":    []any{map[string]any{"name": "y", "parameters": map[string]any{"binary_data": false}}}}, f32Bytes(x))
	r := do(t, h, "POST", "/v2/models/jets/infer", body, HeaderLengthHeader, n)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" || r.header.Get(HeaderLengthHeader) != "" {
		t.Fatalf("%d %v %s", r.status, r.header, r.body)
	}
	equal(t, jsonFloats(t, output(t, r.json(t))["data"]), want(x))
}

func TestInferCompressed(t *testing.T) {
	h := Handler(newFront(true), limit)
	x := rowsOf(4)
	body, n := binaryBody(t, map[string]any{"inputs": []any{binaryInput(4)}}, f32Bytes(x))
	var gz, zl bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(body)
	gw.Close()
	zw := zlib.NewWriter(&zl)
	zw.Write(body)
	zw.Close()
	var fl bytes.Buffer // deflate without zlib's wrapping, as some clients send it
	fw, _ := flate.NewWriter(&fl, flate.DefaultCompression)
	fw.Write(body)
	fw.Close()
	for i, c := range []struct {
		enc  string
		body []byte
	}{{"gzip", gz.Bytes()}, {"deflate", zl.Bytes()}, {"deflate", fl.Bytes()}} {
		r := do(t, h, "POST", "/v2/models/jets/infer", c.body, HeaderLengthHeader, n, "Content-Encoding", c.enc)
		if r.status != 200 {
			t.Fatalf("%d %s: %d %s", i, c.enc, r.status, r.body)
		}
		equal(t, jsonFloats(t, output(t, r.json(t))["data"]), want(x))
	}
	r := do(t, h, "POST", "/v2/models/jets/infer", body, HeaderLengthHeader, n, "Content-Encoding", "br")
	if r.status != 400 || !strings.Contains(r.errorMessage(t), "br") {
		t.Errorf("br: %d %s", r.status, r.body)
	}
	r = do(t, h, "POST", "/v2/models/jets/infer", []byte("not gzip at all"), "Content-Encoding", "gzip")
	if r.status != 400 {
		t.Errorf("bad gzip: %d %s", r.status, r.body)
	}
}

func jsonBody(n, width int) []byte {
	data := make([]float32, n*width)
	b, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "x", "datatype": "FP32", "shape": []int{n, width}, "data": data}}})
	return b
}

func TestInferErrors(t *testing.T) {
	front := newFront(true)
	h := Handler(front, limit)
	// The Front's own message for a wrong shape.
	_, fe := front.ModelInfer(context.Background(), oip.Call{Authorization: "Bearer good", RequestID: "t"}, &tritonpb.ModelInferRequest{
		ModelName: "jets", Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{2, 3}}},
		RawInputContents: [][]byte{make([]byte, 24)}})
	if fe == nil {
		t.Fatal("the Front accepts shape [2, 3]")
	}
	r := do(t, h, "POST", "/v2/models/jets/infer", jsonBody(2, 3))
	if msg := r.errorMessage(t); r.status != 400 || msg != fe.Message {
		t.Errorf("wrong shape: %d %q, the Front says %q", r.status, msg, fe.Message)
	}
	r = do(t, h, "POST", "/v2/models/nope/infer", jsonBody(1, 4))
	if r.status != 404 || !strings.Contains(r.errorMessage(t), "nope") {
		t.Errorf("unknown model: %d %s", r.status, r.body)
	}
	r = do(t, h, "POST", "/v2/models/jets/infer", jsonBody(1, 4), "Authorization", "Bearer bad")
	if r.status != 401 || r.errorMessage(t) != "the token is not valid" {
		t.Errorf("bad token: %d %s", r.status, r.body)
	}
	r = do(t, h, "POST", "/v2/models/jets/infer", jsonBody(1, 4), "Authorization", "")
	if r.status != 401 {
		t.Errorf("no token: %d %s", r.status, r.body)
	}
	// An unexpected failure says nothing more.
	body, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "x", "datatype": "FP32", "shape": []int{1, 4}, "data": []float32{-999, 0, 0, 0}}}})
	r = do(t, h, "POST", "/v2/models/jets/infer", body)
	if r.status != 500 || r.errorMessage(t) != "internal error" {
		t.Errorf("internal: %d %s", r.status, r.body)
	}
	// The classification extension reaches the Front, which refuses it.
	body, _ = json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "x", "datatype": "FP32", "shape": []int{1, 4}, "data": []float32{1, 2, 3, 4}}},
		"outputs": []any{map[string]any{"name": "y", "parameters": map[string]any{"classification": 2}}}})
	r = do(t, h, "POST", "/v2/models/jets/infer", body)
	if r.status != 400 || !strings.Contains(r.errorMessage(t), "classification") {
		t.Errorf("classification: %d %s", r.status, r.body)
	}
	// An unknown request parameter reaches the Front too.
	body, _ = json.Marshal(map[string]any{"parameters": map[string]any{"golbal_tag": "x"},
		"inputs": []any{map[string]any{"name": "x", "datatype": "FP32", "shape": []int{1, 4}, "data": []float32{1, 2, 3, 4}}}})
	r = do(t, h, "POST", "/v2/models/jets/infer", body)
	if r.status != 400 || !strings.Contains(r.errorMessage(t), "golbal_tag") {
		t.Errorf("unknown parameter: %d %s", r.status, r.body)
	}
	for name, c := range map[string]struct {
		body, bin string // bin: binary data after the JSON
		header    []string
		want      string
	}{
		"malformed":               {`{"inputs": [`, "", nil, "JSON"},
		"not an object":           {`[1, 2]`, "", nil, "object"},
		"trailing":                {`{"inputs": []} x`, "", nil, "more"},
		"shape type":              {`{"inputs": [{"name": "x", "datatype": "FP32", "shape": ["1", 4], "data": [1, 2, 3, 4]}]}`, "", nil, "inputs.shape"},
		"string data":             {`{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": ["1", 2, 3, 4]}]}`, "", nil, "numbers"},
		"bool for FP32":           {`{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [true, 2, 3, 4]}]}`, "", nil, "true"},
		"FP16 as JSON":            {`{"inputs": [{"name": "x", "datatype": "FP16", "shape": [1, 4], "data": [1, 2, 3, 4]}]}`, "", nil, "binary"},
		"BYTES":                   {`{"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]}]}`, "", nil, "not served"},
		"no data":                 {`{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4]}]}`, "", nil, "no data"},
		"shared memory":           {`{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"shared_memory_region": "r"}}]}`, "", nil, "shared memory"},
		"bad parameter":           {`{"parameters": {"run": [1]}, "inputs": []}`, "", nil, "run"},
		"binary_data_output type": {`{"parameters": {"binary_data_output": 1}, "inputs": []}`, "", nil, "binary_data_output"},
		"header length":           {`{"inputs": []}`, "", []string{HeaderLengthHeader, "99"}, HeaderLengthHeader},
		"truncated":               {`{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]}`, "0123456789", nil, "only 10 bytes"},
		"extra bytes":             {`{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]}`, "0123456789abcdefXY", nil, "18 bytes"},
		"data and size":           {`{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4], "parameters": {"binary_data_size": 16}}]}`, "", nil, "both"},
		"negative size":           {`{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": -1}}]}`, "", nil, "binary_data_size"},
		"integer range":           {`{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}`, "", nil, "range"},
	} {
		header := c.header
		if c.bin != "" {
			header = []string{HeaderLengthHeader, strconv.Itoa(len(c.body))}
		}
		r := do(t, h, "POST", "/v2/models/jets/infer", []byte(c.body+c.bin), header...)
		msg := r.errorMessage(t)
		if r.status != 400 || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want 400 saying %q", name, r.status, msg, c.want)
		}
		for _, internal := range []string{"Go ", "struct", "inferRequest", "inferInput", "json:"} {
			if strings.Contains(msg, internal) {
				t.Errorf("%s: %q names Go internals", name, msg)
			}
		}
	}
}

func TestClientCertificate(t *testing.T) {
	h := Handler(newFront(true), limit)
	for subject, status := range map[string]int{"cms-hlt": 200, "someone": 401} {
		req := httptest.NewRequest("POST", "/v2/models/jets/infer", bytes.NewReader(jsonBody(1, 4)))
		cert := &x509.Certificate{Subject: pkix.Name{CommonName: subject, Organization: []string{"CERN"}}}
		req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != status {
			t.Errorf("certificate of %s: %d %s", subject, rec.Code, rec.Body)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	h := Handler(newFront(true), limit)
	r := do(t, h, "POST", "/v2/models/jets/infer", jsonBody(64, 1000)) // about 128 kB of JSON
	if r.status != 413 || !strings.Contains(r.errorMessage(t), "larger") {
		t.Errorf("over the limit: %d %s", r.status, r.body)
	}
	// Small compressed, too large decompressed.
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(jsonBody(64, 1000))
	gw.Close()
	if gz.Len() >= limit {
		t.Fatalf("the gzip body is %d bytes", gz.Len())
	}
	r = do(t, h, "POST", "/v2/models/jets/infer", gz.Bytes(), "Content-Encoding", "gzip")
	if r.status != 413 {
		t.Errorf("over the limit decompressed: %d %s", r.status, r.body)
	}
	// Within the limit.
	if r := do(t, h, "POST", "/v2/models/jets/infer", jsonBody(64, 4)); r.status != 200 {
		t.Errorf("within the limit: %d %s", r.status, r.body)
	}
}

func TestHealthAndServer(t *testing.T) {
	h := Handler(newFront(true), limit)
	for _, path := range []string{"/v2/health/live", "/v2/health/ready"} {
		if r := do(t, h, "GET", path, nil, "Authorization", ""); r.status != 200 || len(r.body) != 0 {
			t.Errorf("%s: %d %q", path, r.status, r.body)
		}
	}
	empty := Handler(newFront(false), limit) // no route table yet
	if r := do(t, empty, "GET", "/v2/health/ready", nil); r.status != 503 {
		t.Errorf("ready without a table: %d", r.status)
	}
	if r := do(t, empty, "GET", "/v2/health/live", nil); r.status != 200 {
		t.Errorf("live without a table: %d", r.status)
	}
	r := do(t, h, "GET", "/v2", nil)
	m := r.json(t)
	if r.status != 200 || m["name"] != oip.ServerName || m["version"] != "test" || fmt.Sprint(m["extensions"]) != fmt.Sprint(oip.Extensions) {
		t.Errorf("server metadata: %d %s", r.status, r.body)
	}
	if r := do(t, h, "GET", "/v2", nil, "Authorization", "Bearer bad"); r.status != 401 {
		t.Errorf("server metadata, bad token: %d", r.status)
	}
	r = do(t, h, "GET", "/v2/nothing/here", nil)
	if r.status != 404 || !strings.Contains(r.errorMessage(t), "/v2/nothing/here") {
		t.Errorf("unknown path: %d %s", r.status, r.body)
	}
	r = do(t, h, "GET", "/v2/models/jets/infer", nil)
	if r.status != 405 || r.header.Get("Allow") != "POST" || !strings.Contains(r.errorMessage(t), "POST") {
		t.Errorf("GET infer: %d %v %s", r.status, r.header, r.body)
	}
	if r := do(t, h, "DELETE", "/v2/health/live", nil); r.status != 405 {
		t.Errorf("DELETE live: %d", r.status)
	}
	// This front has no Deployer: load and unload are not served (repository_test: with one).
	r = do(t, h, "POST", "/v2/repository/models/jets/load", nil)
	if r.status != 501 || !strings.Contains(r.errorMessage(t), "RepositoryModelLoad") {
		t.Errorf("load: %d %s", r.status, r.body)
	}
	r = do(t, h, "POST", "/v2/repository/models/jets/unload", nil)
	if r.status != 501 || !strings.Contains(r.errorMessage(t), "RepositoryModelUnload") {
		t.Errorf("unload: %d %s", r.status, r.body)
	}
}

func TestModelEndpoints(t *testing.T) {
	h := Handler(newFront(true), limit)
	for _, path := range []string{"/v2/models/jets", "/v2/models/jets/versions/1.2", "/v2/models/jets/versions/1000002"} {
		r := do(t, h, "GET", path, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var meta struct {
			Name, Platform  string
			Versions        []string
			Inputs, Outputs []tensorMetadata
		}
		if err := json.Unmarshal(r.body, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Name != "jets" || meta.Platform != oip.Platform || fmt.Sprint(meta.Versions) != "[1000002]" ||
			fmt.Sprint(meta.Inputs) != "[{x FP32 [-1 4]}]" || fmt.Sprint(meta.Outputs) != "[{y FP32 [-1 2]}]" {
			t.Errorf("%s: %s", path, r.body)
		}
	}
	if r := do(t, h, "GET", "/v2/models/nope", nil); r.status != 404 {
		t.Errorf("unknown model metadata: %d", r.status)
	}

	for path, status := range map[string]int{"/v2/models/jets/ready": 200, "/v2/models/jets/versions/1.2/ready": 200,
		"/v2/models/jets/versions/9.9/ready": 400, "/v2/models/nope/ready": 400} {
		if r := do(t, h, "GET", path, nil); r.status != status {
			t.Errorf("%s: %d, want %d (%s)", path, r.status, status, r.body)
		}
	}
	if r := do(t, h, "GET", "/v2/models/jets/ready", nil, "Authorization", "Bearer bad"); r.status != 401 {
		t.Errorf("ready, bad token: %d", r.status)
	}

	r := do(t, h, "GET", "/v2/models/jets/config", nil)
	var cfg struct {
		Name         string `json:"name"`
		Platform     string `json:"platform"`
		MaxBatchSize int    `json:"max_batch_size"`
		Input        []struct {
			Name     string  `json:"name"`
			DataType string  `json:"data_type"`
			Dims     []int64 `json:"dims"` // numbers, as Triton writes them
		} `json:"input"`
		Output     []map[string]any             `json:"output"`
		Parameters map[string]map[string]string `json:"parameters"`
		Dynamic    *struct{}                    `json:"dynamic_batching"`
	}
	if err := json.Unmarshal(r.body, &cfg); err != nil || r.status != 200 {
		t.Fatalf("config: %d %v %s", r.status, err, r.body)
	}
	if cfg.Name != "jets" || cfg.Platform != oip.Platform || cfg.MaxBatchSize != 64 || len(cfg.Input) != 1 ||
		cfg.Input[0].Name != "x" || cfg.Input[0].DataType != "TYPE_FP32" || fmt.Sprint(cfg.Input[0].Dims) != "[4]" ||
		len(cfg.Output) != 1 || cfg.Parameters["beamops_parameters_version"]["string_value"] != "1.2" || cfg.Dynamic == nil {
		t.Errorf("config: %s", r.body)
	}
	if r := do(t, h, "GET", "/v2/models/jets/versions/1000002/config", nil); r.status != 200 {
		t.Errorf("config by version: %d", r.status)
	}

	r = do(t, h, "POST", "/v2/repository/index", []byte(`{"ready": true}`))
	if r.status != 200 || string(r.body) != `[{"name":"jets","version":"1000002","state":"READY","reason":""}]` {
		t.Errorf("index: %d %s", r.status, r.body)
	}
	if r := do(t, h, "POST", "/v2/repository/index", nil); r.status != 200 {
		t.Errorf("index without a body: %d %s", r.status, r.body)
	}
	if r := do(t, h, "POST", "/v2/repository/index", []byte(`{"ready": "yes"}`)); r.status != 400 {
		t.Errorf("index, bad body: %d %s", r.status, r.body)
	}
}

func TestStatistics(t *testing.T) {
	h := Handler(newFront(true), limit)
	for i := 0; i < 3; i++ {
		if r := do(t, h, "POST", "/v2/models/jets/infer", jsonBody(2, 4)); r.status != 200 {
			t.Fatalf("infer: %d %s", r.status, r.body)
		}
	}
	do(t, h, "POST", "/v2/models/jets/infer", jsonBody(2, 3)) // a failure
	for _, path := range []string{"/v2/models/jets/stats", "/v2/models/jets/versions/1.2/stats", "/v2/models/stats"} {
		r := do(t, h, "GET", path, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		stats, _ := r.json(t)["model_stats"].([]any)
		if len(stats) != 1 {
			t.Fatalf("%s: %s", path, r.body)
		}
		s := stats[0].(map[string]any)
		inf := s["inference_stats"].(map[string]any)
		success := inf["success"].(map[string]any)
		fail := inf["fail"].(map[string]any)
		// Numbers, not protojson's strings; zero counts written too.
		if s["name"] != "jets" || s["version"] != "1000002" || s["inference_count"] != json.Number("6") ||
			s["execution_count"] != json.Number("3") || success["count"] != json.Number("3") || fail["count"] != json.Number("1") ||
			inf["cache_hit"].(map[string]any)["count"] != json.Number("0") || fmt.Sprint(s["batch_stats"]) != "[]" {
			t.Errorf("%s: %s", path, r.body)
		}
		if _, ok := success["ns"].(json.Number); !ok {
			t.Errorf("%s: success.ns is %T", path, success["ns"])
		}
	}
	if r := do(t, h, "GET", "/v2/models/nope/stats", nil); r.status != 404 {
		t.Errorf("unknown model stats: %d", r.status)
	}
}

func TestParameters(t *testing.T) {
	body := []byte(`{"id": "", "parameters": {"run": 12345678901234567, "global_tag": "GT", "f": 1.5, "b": true, "big": 18446744073709551615},
		"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}`)
	r := httptest.NewRequest("POST", "/v2/models/jets/infer", bytes.NewReader(body))
	req, plan, e := parseInfer(r, body)
	if e != nil {
		t.Fatal(e.msg)
	}
	p := req.GetParameters()
	if p["run"].GetInt64Param() != 12345678901234567 || p["global_tag"].GetStringParam() != "GT" || p["f"].GetDoubleParam() != 1.5 ||
		!p["b"].GetBoolParam() || p["big"].GetUint64Param() != math.MaxUint64 {
		t.Errorf("parameters %v", p)
	}
	if !plan.hasID || plan.binary("y") {
		t.Errorf("plan %+v", plan)
	}
}

func TestDatatypes(t *testing.T) {
	for _, c := range []struct{ datatype, data, back string }{
		{"BOOL", "[[true, false], [false, true]]", "[true,false,false,true]"},
		{"INT8", "[-128, 127, 0]", "[-128,127,0]"},
		{"INT16", "[-32768, 32767]", "[-32768,32767]"},
		{"INT32", "[-2147483648, 7]", "[-2147483648,7]"},
		{"INT64", "[-9223372036854775808, 9223372036854775807]", "[-9223372036854775808,9223372036854775807]"},
		{"UINT8", "[255]", "[255]"},
		{"UINT16", "[65535]", "[65535]"},
		{"UINT32", "[4294967295]", "[4294967295]"},
		{"UINT64", "[18446744073709551615, 0]", "[18446744073709551615,0]"},
		{"FP32", "[0.1, -2.5e10, 3]", "[0.1,-2.5e+10,3]"},
		{"FP64", "[0.1, 1e-300]", "[0.1,1e-300]"},
		{"FP64", "5", "[5]"},
	} {
		raw, e := rawFromJSON("t", c.datatype, []byte(c.data))
		if e != nil {
			t.Errorf("%s %s: %s", c.datatype, c.data, e.msg)
			continue
		}
		back, ok := appendJSONData(nil, c.datatype, raw)
		if !ok || string(back) != c.back {
			t.Errorf("%s %s: back %s %v, want %s", c.datatype, c.data, back, ok, c.back)
		}
	}
	for _, c := range []struct{ datatype, data string }{
		{"INT8", "[128]"}, {"UINT8", "[-1]"}, {"INT32", "[1.5]"}, {"FP32", "[1e39]"}, {"BOOL", "[1]"}, {"FP64", "[null]"},
		{"FP64", `[{"a": 1}]`}, {"FOO", "[1]"},
	} {
		if _, e := rawFromJSON("t", c.datatype, []byte(c.data)); e == nil || e.status != 400 {
			t.Errorf("%s %s accepted", c.datatype, c.data)
		}
	}
	nan := binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN())))
	if b, ok := appendJSONData([]byte("x"), "FP32", nan); ok || string(b) != "x" {
		t.Errorf("NaN as JSON: %s %v", b, ok)
	}
	if _, ok := appendJSONData(nil, "FP16", []byte{0, 0}); ok {
		t.Error("FP16 as JSON")
	}
}

// deployingHandler serves newFront(true) (deployment jets) with a fake deployer.
func deployingHandler() (http.Handler, *oiptest.Deployer) {
	f := newFront(true)
	d := &oiptest.Deployer{}
	f.Deployer = d
	return Handler(f, limit), d
}

func TestRepositoryParametersTypes(t *testing.T) {
	s := &server{maxBody: limit}
	body := `{"parameters": {"config": "{\"version_policy\": {}}", "version": 1000002, "neg": -3, "unload_dependents": true, "off": false}}`
	r := httptest.NewRequest("POST", "/v2/repository/models/bdt/load", strings.NewReader(body))
	params, herr := s.repositoryParameters(httptest.NewRecorder(), r)
	if herr != nil {
		t.Fatalf("%d %s", herr.status, herr.msg)
	}
	if len(params) != 5 {
		t.Fatalf("parameters %v", params)
	}
	if v, ok := params["config"].GetParameterChoice().(*tritonpb.ModelRepositoryParameter_StringParam); !ok || v.StringParam != `{"version_policy": {}}` {
		t.Errorf("config %v", params["config"])
	}
	for key, n := range map[string]int64{"version": 1000002, "neg": -3} {
		if v, ok := params[key].GetParameterChoice().(*tritonpb.ModelRepositoryParameter_Int64Param); !ok || v.Int64Param != n {
			t.Errorf("%s %v, want int64 %d", key, params[key], n)
		}
	}
	for key, b := range map[string]bool{"unload_dependents": true, "off": false} {
		if v, ok := params[key].GetParameterChoice().(*tritonpb.ModelRepositoryParameter_BoolParam); !ok || v.BoolParam != b {
			t.Errorf("%s %v, want bool %v", key, params[key], b)
		}
	}
	for _, empty := range []string{"", "  \n", `{}`, `{"parameters": null}`, `{"parameters": {}}`} {
		r := httptest.NewRequest("POST", "/v2/repository/models/bdt/load", strings.NewReader(empty))
		if params, herr := s.repositoryParameters(httptest.NewRecorder(), r); herr != nil || len(params) != 0 {
			t.Errorf("%q: %v %v", empty, params, herr)
		}
	}
}

func TestRepositoryLoad(t *testing.T) {
	path := "/v2/repository/models/bdt/load"
	for name, c := range map[string]struct {
		body                   string
		version, alias, reason string
	}{
		"no body":         {"", "", "production", ""},
		"empty object":    {`{}`, "", "production", ""},
		"version string":  {`{"parameters": {"version": "1.2"}}`, "1.2", "", ""},
		"version integer": {`{"parameters": {"version": 1000002}}`, "1.2", "", ""},
		"alias":           {`{"parameters": {"alias": "candidate"}}`, "", "candidate", ""},
		// what tritonclient.http's load_model(config=...) sends
		"config": {`{"parameters": {"config": "{\"version_policy\": {\"specific\": {\"versions\": [1000002]}}}"}}`, "1.2", "", ""},
	} {
		h, d := deployingHandler()
		r := do(t, h, "POST", path, []byte(c.body))
		if r.status != 200 || len(r.body) != 0 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
			continue
		}
		if len(d.Deploys) != 1 || len(d.Undeploys) != 0 {
			t.Errorf("%s: %d deploys, %d undeploys", name, len(d.Deploys), len(d.Undeploys))
			continue
		}
		got := d.Deploys[0]
		if got.GetModel() != "bdt" || got.GetName() != "bdt" || !got.GetReplace() || got.GetReason() == "" ||
			got.GetTarget().GetParametersVersion() != c.version || got.GetTarget().GetAlias() != c.alias {
			t.Errorf("%s: Deploy %v, want version %q alias %q", name, got, c.version, c.alias)
		}
		if d.Auths[0] != "Bearer good" {
			t.Errorf("%s: authorization %q", name, d.Auths[0])
		}
	}
	// A deployment served already, no target named: loaded again with what it serves.
	h, d := deployingHandler()
	if r := do(t, h, "POST", "/v2/repository/models/jets/load", nil); r.status != 200 || len(d.Deploys) != 1 ||
		d.Deploys[0].GetTarget().GetParametersVersion() != "1.2" {
		t.Errorf("load of jets: %d %s, deploys %v", r.status, r.body, d.Deploys)
	}
	if r := do(t, h, "GET", path, nil); r.status != 405 || r.header.Get("Allow") != "POST" || len(d.Deploys) != 1 {
		t.Errorf("GET load: %d %v", r.status, r.header)
	}
}

func TestRepositoryLoadErrors(t *testing.T) {
	path := "/v2/repository/models/bdt/load"
	for name, c := range map[string]struct {
		body   string
		header []string
		status int
		want   string
	}{
		"list value":        {`{"parameters": {"version": [1000002]}}`, nil, 400, `"version"`},
		"object value":      {`{"parameters": {"config": {"version_policy": {}}}}`, nil, 400, `"config"`},
		"null value":        {`{"parameters": {"alias": null}}`, nil, 400, `"alias"`},
		"fractional":        {`{"parameters": {"version": 1.2}}`, nil, 400, "whole number"},
		"beyond int64":      {`{"parameters": {"version": 9223372036854775808}}`, nil, 400, `"version"`},
		"malformed":         {`{"parameters": {`, nil, 400, "JSON"},
		"not an object":     {`[1]`, nil, 400, "object"},
		"parameters a list": {`{"parameters": [1]}`, nil, 400, "parameters"},
		// refused by the Front
		"file":          {`{"parameters": {"file:1/model.onnx": "b25ueA=="}}`, nil, 400, "file:1/model.onnx"},
		"two targets":   {`{"parameters": {"version": "1.2", "alias": "production"}}`, nil, 400, "one of"},
		"config batch":  {`{"parameters": {"config": "{\"max_batch_size\": 8}"}}`, nil, 400, "config"},
		"no token":      {`{"parameters": {"version": "1.2"}}`, []string{"Authorization", ""}, 401, "token"},
		"bad encoding":  {`{}`, []string{"Content-Encoding", "br"}, 400, "br"},
		"bool version":  {`{"parameters": {"version": true}}`, nil, 400, "version"},
		"integer alias": {`{"parameters": {"alias": 3}}`, nil, 400, "alias"},
	} {
		h, d := deployingHandler()
		r := do(t, h, "POST", path, []byte(c.body), c.header...)
		if msg := r.errorMessage(t); r.status != c.status || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want %d saying %s", name, r.status, msg, c.status, c.want)
		}
		if len(d.Deploys)+len(d.Undeploys) != 0 {
			t.Errorf("%s: the deployer was called", name)
		}
	}
}

func TestRepositoryDeployerErrors(t *testing.T) {
	for _, c := range []struct {
		e      *rpcstatus.Error
		status int
		msg    string
	}{
		{rpcstatus.New(codes.PermissionDenied, "needs the deployer role"), 403, "needs the deployer role"},
		{rpcstatus.New(codes.NotFound, "no model bdt in the registry"), 404, "no model bdt in the registry"},
		{rpcstatus.New(codes.Unauthenticated, "the token has been revoked"), 401, "the token has been revoked"},
		{rpcstatus.New(codes.FailedPrecondition, "bdt 1.2 has no artifact"), 400, "bdt 1.2 has no artifact"},
		{rpcstatus.New(codes.Unavailable, "the control plane is down"), 503, "the control plane is down"},
		{rpcstatus.New(codes.DeadlineExceeded, "not ready in time"), 504, "not ready in time"},
		{rpcstatus.New(codes.Internal, "stack trace here"), 500, "internal error"},
	} {
		for _, op := range []string{"load", "unload"} {
			h, d := deployingHandler()
			d.Err = c.e
			r := do(t, h, "POST", "/v2/repository/models/bdt/"+op, nil)
			if msg := r.errorMessage(t); r.status != c.status || msg != c.msg {
				t.Errorf("%s, %v: %d %q, want %d %q", op, c.e.Code, r.status, msg, c.status, c.msg)
			}
			if len(d.Deploys)+len(d.Undeploys) != 1 {
				t.Errorf("%s, %v: %d deploys, %d undeploys", op, c.e.Code, len(d.Deploys), len(d.Undeploys))
			}
		}
	}
}

func TestRepositoryUnload(t *testing.T) {
	for _, body := range []string{"", `{}`, `{"parameters": {"unload_dependents": true}}`, `{"parameters": {"unload_dependents": false}}`} {
		h, d := deployingHandler()
		r := do(t, h, "POST", "/v2/repository/models/jets/unload", []byte(body))
		if r.status != 200 || len(r.body) != 0 {
			t.Errorf("%q: %d %s", body, r.status, r.body)
			continue
		}
		if len(d.Undeploys) != 1 || len(d.Deploys) != 0 || d.Undeploys[0].GetName() != "jets" || d.Undeploys[0].GetReason() == "" ||
			d.Auths[0] != "Bearer good" {
			t.Errorf("%q: undeploys %v, deploys %v, authorization %q", body, d.Undeploys, d.Deploys, d.Auths)
		}
	}
	for name, c := range map[string]struct {
		body   string
		header []string
		status int
		want   string
	}{
		"other parameter": {`{"parameters": {"version": "1.2"}}`, nil, 400, "version"},
		"list value":      {`{"parameters": {"unload_dependents": [true]}}`, nil, 400, "unload_dependents"},
		"fractional":      {`{"parameters": {"unload_dependents": 0.5}}`, nil, 400, "whole number"},
		"malformed":       {`{"parameters"`, nil, 400, "JSON"},
		"no token":        {"", []string{"Authorization", " "}, 401, "token"},
	} {
		h, d := deployingHandler()
		r := do(t, h, "POST", "/v2/repository/models/jets/unload", []byte(c.body), c.header...)
		if msg := r.errorMessage(t); r.status != c.status || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want %d saying %s", name, r.status, msg, c.status, c.want)
		}
		if len(d.Deploys)+len(d.Undeploys) != 0 {
			t.Errorf("%s: the deployer was called", name)
		}
	}
	h, d := deployingHandler()
	if r := do(t, h, "GET", "/v2/repository/models/jets/unload", nil); r.status != 405 || len(d.Undeploys) != 0 {
		t.Errorf("GET unload: %d", r.status)
	}
}
