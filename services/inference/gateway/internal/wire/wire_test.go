package wire

import (
	"math/rand/v2"
	"reflect"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

func big(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestParsePredictAgreesWithProtobuf(t *testing.T) {
	reqs := []*inferencev1.PredictRequest{
		{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
			Inputs: []*commonv1.Tensor{
				{Name: "x", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{2, 4}, RawData: big(32)},
				{Name: "big", Dtype: commonv1.DataType_DATA_TYPE_INT64, Shape: []int64{1 << 40, 0, -1}, RawData: big(100000)},
				{},
			},
			OutputNames: []string{"label", "probabilities"}},
		{Route: &inferencev1.PredictRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets"}}},
		{Route: &inferencev1.PredictRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets",
			Selector: &inferencev1.ModelSelector_ParametersVersion{ParametersVersion: "1.2"}}}},
		{Route: &inferencev1.PredictRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets",
			Selector: &inferencev1.ModelSelector_Alias{Alias: "production"}}}},
		{Route: &inferencev1.PredictRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets",
			Selector: &inferencev1.ModelSelector_GlobalTagRun{GlobalTagRun: &inferencev1.GlobalTagRun{GlobalTag: "gt", Run: 3}}}}},
		{Route: &inferencev1.PredictRequest_Deployment{Deployment: ""}},
		{},
	}
	for _, want := range reqs {
		buf, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got Request
		if err := ParsePredict(buf, &got); err != nil {
			t.Fatal(err)
		}
		compare(t, &got, "", want.GetRoute(), want.GetDeployment(), want.GetInputs(), want.GetOutputNames())
	}
}

func TestParseStreamAgreesWithProtobuf(t *testing.T) {
	want := &inferencev1.PredictStreamRequest{RequestId: "r1", Route: &inferencev1.PredictStreamRequest_Deployment{Deployment: "d"},
		Inputs:      []*commonv1.Tensor{{Name: "x", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1}, RawData: big(4)}},
		OutputNames: []string{"y"}}
	buf, _ := proto.Marshal(want)
	var got Request
	if err := ParseStream(buf, &got); err != nil {
		t.Fatal(err)
	}
	if got.RequestID != "r1" {
		t.Fatal(got.RequestID)
	}
	compare(t, &got, "r1", &inferencev1.PredictRequest_Deployment{Deployment: "d"}, "d", want.Inputs, want.OutputNames)
}

func compare(t *testing.T, got *Request, id string, route any, dep string, inputs []*commonv1.Tensor, outputs []string) {
	t.Helper()
	switch r := route.(type) {
	case *inferencev1.PredictRequest_Deployment, *inferencev1.PredictStreamRequest_Deployment:
		if got.Route != RouteDeployment || got.Deployment != dep {
			t.Errorf("route %v %q, want deployment %q", got.Route, got.Deployment, dep)
		}
	case *inferencev1.PredictRequest_Model:
		sel := r.Model
		want := Selector{Model: sel.GetModel(), Version: sel.GetParametersVersion(), Alias: sel.GetAlias()}
		if gr := sel.GetGlobalTagRun(); gr != nil {
			want.GlobalTag = gr.GetGlobalTag()
			if got.Selector.Run == nil || *got.Selector.Run != int64(gr.GetRun()) {
				t.Errorf("run %v, want %d", got.Selector.Run, gr.GetRun())
			}
		}
		want.Run = got.Selector.Run
		if got.Route != RouteModel || got.Selector != want {
			t.Errorf("route %v %+v, want model %+v", got.Route, got.Selector, want)
		}
	case *inferencev1.PredictStreamRequest_Model:
		if got.Route != RouteModel {
			t.Errorf("route %v, want model", got.Route)
		}
	default:
		if got.Route != RouteNone {
			t.Errorf("route %v, want none", got.Route)
		}
	}
	if len(got.Inputs) != len(inputs) {
		t.Fatalf("%d inputs, want %d", len(got.Inputs), len(inputs))
	}
	for i, w := range inputs {
		g := got.Inputs[i]
		if g.Name != w.Name || g.Dtype != int32(w.Dtype) || len(g.Shape) != len(w.Shape) || string(g.Data) != string(w.RawData) {
			t.Errorf("input %d: %+v", i, g)
		}
		for j := range w.Shape {
			if g.Shape[j] != w.Shape[j] {
				t.Errorf("input %d shape %v, want %v", i, g.Shape, w.Shape)
			}
		}
	}
	if len(got.OutputNames) != len(outputs) || (len(outputs) > 0 && !reflect.DeepEqual(got.OutputNames, outputs)) {
		t.Errorf("outputs %v, want %v", got.OutputNames, outputs)
	}
}

func TestParseFollowsProtobufRules(t *testing.T) {
	var b []byte
	// deployment then model: the model wins (last member of the oneof)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "jets")
	sel, _ := proto.Marshal(&inferencev1.ModelSelector{Model: "m"})
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, sel)
	var r Request
	if err := ParsePredict(b, &r); err != nil || r.Route != RouteModel {
		t.Fatalf("%v %v", r.Route, err)
	}
	// ... and a deployment after it wins again
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "other")
	if err := ParsePredict(b, &r); err != nil || r.Route != RouteDeployment || r.Deployment != "other" {
		t.Fatalf("%v %q %v", r.Route, r.Deployment, err)
	}
	// unknown fields, a known field with another wire type: skipped
	b = protowire.AppendTag(b, 99, protowire.VarintType)
	b = protowire.AppendVarint(b, 5)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 5)
	if err := ParsePredict(b, &r); err != nil || r.Deployment != "other" {
		t.Fatalf("%q %v", r.Deployment, err)
	}
	// a tensor with unpacked shape values and a repeated name (the last wins)
	var tb []byte
	tb = protowire.AppendTag(tb, 1, protowire.BytesType)
	tb = protowire.AppendString(tb, "a")
	tb = protowire.AppendTag(tb, 1, protowire.BytesType)
	tb = protowire.AppendString(tb, "x")
	tb = protowire.AppendTag(tb, 3, protowire.VarintType)
	tb = protowire.AppendVarint(tb, 2)
	tb = protowire.AppendTag(tb, 3, protowire.VarintType)
	tb = protowire.AppendVarint(tb, 3)
	b2 := protowire.AppendTag(nil, 3, protowire.BytesType)
	b2 = protowire.AppendBytes(b2, tb)
	if err := ParsePredict(b2, &r); err != nil || r.Inputs[0].Name != "x" || !reflect.DeepEqual(r.Inputs[0].Shape, []int64{2, 3}) {
		t.Fatalf("%+v %v", r.Inputs, err)
	}
	var pb inferencev1.PredictRequest
	if err := proto.Unmarshal(b2, &pb); err != nil || pb.Inputs[0].Name != "x" || !reflect.DeepEqual(pb.Inputs[0].Shape, []int64{2, 3}) {
		t.Fatal("protobuf disagrees", err)
	}
	// invalid UTF-8 and truncated messages are errors, as for protobuf
	bad := protowire.AppendTag(nil, 1, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte{0xff, 0xfe})
	if ParsePredict(bad, &r) == nil || proto.Unmarshal(bad, &pb) == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
	full, _ := proto.Marshal(&inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"}})
	if ParsePredict(full[:len(full)-1], &r) == nil {
		t.Fatal("truncated message accepted")
	}
	// a model selector that protobuf refuses is refused too
	badSel := protowire.AppendTag(nil, 2, protowire.BytesType)
	badSel = protowire.AppendBytes(badSel, bad)
	if ParsePredict(badSel, &r) == nil {
		t.Fatal("invalid model selector accepted")
	}
}

func TestParseRandomBytesAgreesWithProtobufOnErrors(t *testing.T) {
	good, _ := proto.Marshal(&inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
		Inputs: []*commonv1.Tensor{{Name: "x", Dtype: 11, Shape: []int64{2, 4}, RawData: big(32)}}, OutputNames: []string{"y"}})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		b := append([]byte(nil), good...)
		for k := 0; k < 1+rng.IntN(3); k++ {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		var r Request
		var pb inferencev1.PredictRequest
		errMine, errProto := ParsePredict(b, &r), proto.Unmarshal(b, &pb)
		if (errMine == nil) != (errProto == nil) {
			t.Fatalf("%x: mine %v, protobuf %v", b, errMine, errProto)
		}
		if errMine == nil {
			dep := ""
			if r.Route == RouteDeployment {
				dep = r.Deployment
			}
			if dep != pb.GetDeployment() || len(r.Inputs) != len(pb.Inputs) || len(r.OutputNames) != len(pb.OutputNames) {
				t.Fatalf("%x: parsed differently", b)
			}
			for j, in := range pb.Inputs {
				if r.Inputs[j].Name != in.Name || r.Inputs[j].Dtype != int32(in.Dtype) || string(r.Inputs[j].Data) != string(in.RawData) ||
					len(r.Inputs[j].Shape) != len(in.Shape) {
					t.Fatalf("%x: input %d parsed differently", b, j)
				}
			}
		}
	}
}

func TestResponsesDecodeAsProtobuf(t *testing.T) {
	outputs := []tensor.Tensor{
		{Name: "probabilities", Dtype: tensor.Float32, Shape: []int64{1000, 2}, Data: big(8000)},
		{Name: "label", Dtype: tensor.Int64, Shape: []int64{1000}, Data: big(8000)[:8000]},
		{Name: "small", Dtype: tensor.Float64, Shape: []int64{1}, Data: big(8)},
		{Name: "", Dtype: 0, Shape: nil, Data: nil},
	}
	tail := NewTail("jets", "jets-model", "1.2")
	var resp inferencev1.PredictResponse
	if err := proto.Unmarshal(PredictResponse(outputs, &tail).Materialize(), &resp); err != nil {
		t.Fatal(err)
	}
	want := &inferencev1.PredictResponse{Deployment: "jets", Parameters: &commonv1.ParametersRef{Model: "jets-model", Version: "1.2"}}
	for _, o := range outputs {
		want.Outputs = append(want.Outputs, o.Proto())
	}
	if !proto.Equal(&resp, want) {
		t.Fatalf("got %v", &resp)
	}
	// Same bytes as protobuf's own encoding.
	wantBin, _ := proto.Marshal(want)
	if string(PredictResponse(outputs, &tail).Materialize()) != string(wantBin) {
		t.Error("PredictResponse bytes differ from protobuf's")
	}

	var sr inferencev1.PredictStreamResponse
	if err := proto.Unmarshal(StreamOK("r7", outputs, &tail).Materialize(), &sr); err != nil {
		t.Fatal(err)
	}
	wantS := &inferencev1.PredictStreamResponse{RequestId: "r7", Status: &spb.Status{}, Outputs: want.Outputs,
		Deployment: "jets", Parameters: want.Parameters}
	if !proto.Equal(&sr, wantS) || sr.Status == nil {
		t.Fatalf("got %v", &sr)
	}
	wantSBin, _ := proto.Marshal(wantS)
	if string(StreamOK("r7", outputs, &tail).Materialize()) != string(wantSBin) {
		t.Error("PredictStreamResponse bytes differ from protobuf's")
	}
	// Large data is a piece of its own, not a copy.
	pieces := PredictResponse(outputs, &tail)
	shared := false
	for _, p := range pieces {
		if d := p.ReadOnlyData(); len(d) == len(outputs[0].Data) && &d[0] == &outputs[0].Data[0] {
			shared = true
		}
	}
	if !shared {
		t.Error("large output data was copied")
	}
}
