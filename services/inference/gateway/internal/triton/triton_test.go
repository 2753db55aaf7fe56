package triton

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

func TestErrorsMapLikeTritonBackend(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{status.Error(codes.Unavailable, "connection refused"), codes.Unavailable, "Triton is not reachable (running the model); retry shortly"},
		{status.Error(codes.DeadlineExceeded, "x"), codes.Unavailable, "Triton is not reachable (running the model); retry shortly"},
		{status.Error(codes.Canceled, "x"), codes.Unavailable, "Triton is not reachable (running the model); retry shortly"},
		{status.Error(codes.NotFound, "Request for unknown model: \"jets-1-2\" is not found"), codes.Unavailable,
			"the model is not loaded in Triton right now (running the model); it is being (re)loaded, retry shortly"},
		{status.Error(codes.Unavailable+100, "Request for Unknown Model \"x\""), codes.Unavailable,
			"the model is not loaded in Triton right now (running the model); it is being (re)loaded, retry shortly"},
		{status.Error(codes.Internal, "model \"x\" version 1 IS NOT READY"), codes.Unavailable,
			"the model is not loaded in Triton right now (running the model); it is being (re)loaded, retry shortly"},
		{status.Error(codes.InvalidArgument, "  onnx runtime error: /opt/models/jets/1/model.onnx failed \n"), codes.FailedPrecondition,
			"Triton failed running the model: onnx runtime error: <path> failed"},
		{status.Error(codes.Internal, "in /a/b/ and /c and /d/é/f"), codes.FailedPrecondition,
			"Triton failed running the model: in <path> and /c and <path>"},
	}
	for _, c := range cases {
		e := MapError(c.err)
		if e.Code != c.code || e.Message != c.msg || e.Reason != map[codes.Code]string{codes.Unavailable: "UNAVAILABLE",
			codes.FailedPrecondition: "FAILED_PRECONDITION"}[c.code] {
			t.Errorf("%v -> %v %q %s", c.err, e.Code, e.Message, e.Reason)
		}
	}
	// The model's process (a Python-backend stub) died: Triton says so until the model is reloaded.
	if MapError(status.Error(codes.Internal, "Stub process \"jets__1_0_0_0\" is not healthy.")) != ErrModelProcessDied ||
		ErrModelProcessDied.Code != codes.Unavailable || Retryable(ErrModelProcessDied) {
		t.Error("a dead model process is recognisable, UNAVAILABLE, not retried on another route")
	}
	if MapError(status.Error(codes.Unavailable, "Stub process \"x\" is not healthy.")) != errUnreachable {
		t.Error("UNAVAILABLE stays \"not reachable\" whatever the message")
	}
	if MapError(status.Error(codes.NotFound, "unknown model")) != ErrModelNotLoaded {
		t.Error("model not loaded is recognisable")
	}
	// UNAVAILABLE is "not reachable" whatever the message (as in Python), but one that says the
	// model is missing may be retried on a new route.
	e := MapError(status.Error(codes.Unavailable, "Request for unknown model: \"x\" is not found"))
	if e.Message != "Triton is not reachable (running the model); retry shortly" || !Retryable(e) {
		t.Errorf("%v %v", e, Retryable(e))
	}
	if Retryable(MapError(status.Error(codes.Unavailable, "connection refused"))) ||
		Retryable(MapError(status.Error(codes.Internal, "boom"))) || !Retryable(ErrModelNotLoaded) {
		t.Error("Retryable")
	}
}

func TestCleanRemovesServerPaths(t *testing.T) {
	for in, want := range map[string]string{
		"failed at /work/main/var/x.onnx: bad": "failed at <path>: bad",
		"ratio 1/2 and /single":                "ratio 1/2 and /single",
		"url http://host:8000/v2/models/x/":    "url http://host:8000<path>",
		"  trailing /a/b/  \t":                 "trailing <path>",
		"":                                     "",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnswerChecksTritonsReply(t *testing.T) {
	reply := &tritonpb.ModelInferResponse{
		Outputs: []*tritonpb.ModelInferResponse_InferOutputTensor{
			{Name: "label", Datatype: "INT64", Shape: []int64{2, 1}},
			{Name: "probabilities", Datatype: "FP32", Shape: []int64{2, 2}},
		},
		RawOutputContents: [][]byte{make([]byte, 16), make([]byte, 16)},
	}
	got, e := answer(reply, []string{"probabilities", "label"})
	if e != nil || got[0].Name != "probabilities" || got[0].Dtype != tensor.Float32 || got[1].Dtype != tensor.Int64 ||
		len(got[1].Shape) != 2 {
		t.Fatalf("%+v %v", got, e)
	}
	if _, e := answer(reply, []string{"nope"}); e == nil || e.Code != codes.FailedPrecondition ||
		e.Message != "Triton failed running the model: no output \"nope\" in its answer" {
		t.Errorf("%v", e)
	}
	short := proto.Clone(reply).(*tritonpb.ModelInferResponse)
	short.RawOutputContents = short.RawOutputContents[:1]
	if _, e := answer(short, []string{"label"}); e == nil ||
		e.Message != "Triton failed running the model: it answered without raw output contents" {
		t.Errorf("%v", e)
	}
	odd := proto.Clone(reply).(*tritonpb.ModelInferResponse)
	odd.Outputs[1].Datatype = "BF16"
	if _, e := answer(odd, []string{"label"}); e == nil ||
		e.Message != "Triton failed running the model: output \"probabilities\" has datatype BF16" {
		t.Errorf("%v", e)
	}
}

func TestCodecRoundTripsModelInfer(t *testing.T) {
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(i)
	}
	req := &tritonpb.ModelInferRequest{
		ModelName: "jets-1-2",
		Inputs: []*tritonpb.ModelInferRequest_InferInputTensor{
			{Name: "x", Datatype: "FP32", Shape: []int64{25000, 1}},
			{Name: "s", Datatype: "INT64", Shape: []int64{1}},
		},
		Outputs:          []*tritonpb.ModelInferRequest_InferRequestedOutputTensor{{Name: "y"}, {Name: ""}},
		RawInputContents: [][]byte{data, data[:8]},
	}
	enc, err := codec{}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(req)
	if string(enc.Materialize()) != string(want) {
		t.Fatal("request bytes differ from protobuf's")
	}
	// With fields the fast path does not write: protobuf's encoding.
	req.Id = "abc"
	enc, _ = codec{}.Marshal(req)
	var back tritonpb.ModelInferRequest
	if err := proto.Unmarshal(enc.Materialize(), &back); err != nil || back.Id != "abc" {
		t.Fatal(err)
	}

	resp := &tritonpb.ModelInferResponse{
		ModelName: "jets-1-2", ModelVersion: "1", Id: "i",
		Parameters: map[string]*tritonpb.InferParameter{"p": {ParameterChoice: &tritonpb.InferParameter_BoolParam{BoolParam: true}}},
		Outputs: []*tritonpb.ModelInferResponse_InferOutputTensor{
			{Name: "y", Datatype: "FP32", Shape: []int64{25000, 1}},
			{Name: "z", Datatype: "FP32", Shape: []int64{2}, Parameters: map[string]*tritonpb.InferParameter{
				"q": {ParameterChoice: &tritonpb.InferParameter_Int64Param{Int64Param: 3}}}},
		},
		RawOutputContents: [][]byte{data, data[:8]},
	}
	bin, _ := proto.Marshal(resp)
	var got tritonpb.ModelInferResponse
	if err := (codec{}).Unmarshal(memSlice(bin), &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, resp) {
		t.Fatalf("decoded %v", &got)
	}
}
