package oip

import (
	"context"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/dataplane"
	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

type admitAll struct{ subjects []string }

func (a *admitAll) Check(_ context.Context, authorization, _ string) *rpcstatus.Error {
	if authorization != "Bearer good" {
		return rpcstatus.New(codes.Unauthenticated, "the token is unknown or has been revoked")
	}
	return nil
}

// Guard never refuses (the real one is auth.Cache's, tested there).
func (a *admitAll) Guard(ctx context.Context, _ func() *rpcstatus.Error) *rpcstatus.Error {
	<-ctx.Done()
	return nil
}

func (a *admitAll) CheckCertificate(_ context.Context, subject, _ string) *rpcstatus.Error {
	a.subjects = append(a.subjects, subject)
	if subject != "CN=cms-hlt,O=CERN" {
		return rpcstatus.New(codes.Unauthenticated, "the client certificate stands for no principal here")
	}
	return nil
}

func route(deployment, model, version, alias string) *inferencev1.GatewayRoute {
	f32 := commonv1.DataType_DATA_TYPE_FLOAT32
	return &inferencev1.GatewayRoute{Deployment: deployment, Model: model, ParametersVersion: version,
		TritonModel: deployment + "__" + version, FollowingAlias: alias, MaxBatchSize: 8, ArtifactSha256: "ab" + version,
		Inputs:  []*commonv1.TensorSpec{{Name: "x", Dtype: f32, Shape: []int64{-1, 2}}},
		Outputs: []*commonv1.TensorSpec{{Name: "y", Dtype: f32, Shape: []int64{-1, 1}}}}
}

// front serves jets (1.0, following production), jets-next (1.1) and other (2.3 of model other).
func front(t *testing.T) (*Front, *admitAll) {
	store := routes.NewStore(nil, nil)
	store.Install(1, []*inferencev1.GatewayRoute{route("jets", "jets", "1.0", "production"),
		route("jets-next", "jets", "1.1", ""), route("other", "other", "2.3", "")})
	sum := func(_ context.Context, model string, in []tensor.Tensor, _ []string) ([]tensor.Tensor, *rpcstatus.Error) {
		rows := in[0].Shape[0]
		out := make([]byte, 0, 4*rows)
		for r := int64(0); r < rows; r++ {
			a := math.Float32frombits(binary.LittleEndian.Uint32(in[0].Data[8*r:]))
			b := math.Float32frombits(binary.LittleEndian.Uint32(in[0].Data[8*r+4:]))
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(a+b))
		}
		return []tensor.Tensor{{Name: "y", Dtype: tensor.Float32, Shape: []int64{rows, 1}, Data: out}}, nil
	}
	auth := &admitAll{}
	plane := &dataplane.Plane{Routes: store, Infer: sum, Retryable: func(*rpcstatus.Error) bool { return false },
		Stats: dataplane.NewStatistics()}
	return &Front{Routes: store, Plane: plane, Auth: auth, Stats: plane.Stats}, auth
}

var good = Call{Authorization: " Bearer good"} // perf_analyzer's -H keeps the space

func TestVersionsHaveAStableIntegerForm(t *testing.T) {
	for _, v := range []string{"1.0", "1.2", "0.7", "12.345678"} {
		n := IntegerVersion(v)
		if n == "" || ParametersVersion(n) != v {
			t.Errorf("%s -> %q -> %q", v, n, ParametersVersion(n))
		}
	}
	if IntegerVersion("1.2") != "1000002" {
		t.Errorf("1.2 -> %s", IntegerVersion("1.2"))
	}
	for _, bad := range []string{"production", "1", "", "1.x", "-3"} {
		if bad != "1" && IntegerVersion(bad) != "" {
			t.Errorf("IntegerVersion(%q) = %q", bad, IntegerVersion(bad))
		}
		if bad != "1" && ParametersVersion(bad) != "" {
			t.Errorf("ParametersVersion(%q) = %q", bad, ParametersVersion(bad))
		}
	}
}

func TestModelNameAndVersionPickTheDeployment(t *testing.T) {
	f, _ := front(t)
	cases := []struct{ name, version, deployment string }{
		{"jets", "", "jets"},
		{"jets", "1.0", "jets"},
		{"jets", "1000000", "jets"},
		{"jets", "production", "jets"},
		{"jets", "1.1", "jets-next"},
		{"jets", "1000001", "jets-next"},
		{"jets-next", "", "jets-next"},
		{"other", "", "other"},
	}
	for _, c := range cases {
		r, e := f.route(context.Background(), good, c.name, c.version, nil)
		if e != nil || r.Deployment != c.deployment {
			t.Errorf("%s:%s -> %v %v, want %s", c.name, c.version, r, e, c.deployment)
		}
	}
	for _, c := range []struct {
		name, version string
		code          codes.Code
	}{{"nope", "", codes.NotFound}, {"jets", "7.3", codes.NotFound}, {"jets-next", "1.0", codes.NotFound},
		{"", "", codes.InvalidArgument}, {"jets", "staging", codes.NotFound}} {
		if _, e := f.route(context.Background(), good, c.name, c.version, nil); e == nil || e.Code != c.code {
			t.Errorf("%s:%s -> %v, want %v", c.name, c.version, e, c.code)
		}
	}
}

func TestAModelServingSeveralVersionsNeedsOneNamed(t *testing.T) {
	store := routes.NewStore(nil, nil)
	store.Install(1, []*inferencev1.GatewayRoute{route("a", "m", "1.0", ""), route("b", "m", "1.1", "")})
	f := &Front{Routes: store}
	if _, e := f.route(context.Background(), good, "m", "", nil); e == nil || e.Code != codes.FailedPrecondition {
		t.Fatalf("got %v", e)
	}
}

func f32s(v ...float32) []byte {
	var out []byte
	for _, x := range v {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
	}
	return out
}

func TestModelInferAnswersRawOutputsWithIdAndProvenance(t *testing.T) {
	f, _ := front(t)
	req := &tritonpb.ModelInferRequest{ModelName: "jets", ModelVersion: "1.1", Id: "r7",
		Inputs:           []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{2, 2}}},
		RawInputContents: [][]byte{f32s(1, 2, 3, 4)}}
	resp, e := f.ModelInfer(context.Background(), good, req)
	if e != nil {
		t.Fatal(e)
	}
	if resp.Id != "r7" || resp.ModelVersion != "1.1" || resp.Parameters["beamops_deployment"].GetStringParam() != "jets-next" ||
		resp.Parameters["beamops_artifact_sha256"].GetStringParam() != "ab1.1" {
		t.Errorf("answer %v", resp)
	}
	if string(resp.RawOutputContents[0]) != string(f32s(3, 7)) || resp.Outputs[0].Datatype != "FP32" {
		t.Errorf("outputs %v %v", resp.Outputs, resp.RawOutputContents)
	}
	// Typed contents give the same answer.
	req.RawInputContents = nil
	req.Inputs[0].Contents = &tritonpb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}
	if resp, e = f.ModelInfer(context.Background(), good, req); e != nil || string(resp.RawOutputContents[0]) != string(f32s(3, 7)) {
		t.Errorf("typed contents: %v %v", resp, e)
	}
	c := f.Stats.Of("jets-next", "1.1")
	if c.Success.Load() != 2 || c.Inferences.Load() != 4 {
		t.Errorf("statistics %d requests %d rows", c.Success.Load(), c.Inferences.Load())
	}
}

func TestModelInferRefusesWhatItDoesNotUnderstand(t *testing.T) {
	f, _ := front(t)
	base := func() *tritonpb.ModelInferRequest {
		return &tritonpb.ModelInferRequest{ModelName: "jets",
			Inputs:           []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}}},
			RawInputContents: [][]byte{f32s(1, 2)}}
	}
	str := func(v string) *tritonpb.InferParameter {
		return &tritonpb.InferParameter{ParameterChoice: &tritonpb.InferParameter_StringParam{StringParam: v}}
	}
	cases := map[string]func(r *tritonpb.ModelInferRequest){
		"misspelt parameter": func(r *tritonpb.ModelInferRequest) {
			r.Parameters = map[string]*tritonpb.InferParameter{"globaltag": str("GT")}
		},
		"tag without run": func(r *tritonpb.ModelInferRequest) {
			r.Parameters = map[string]*tritonpb.InferParameter{"global_tag": str("GT")}
		},
		"run as string": func(r *tritonpb.ModelInferRequest) {
			r.Parameters = map[string]*tritonpb.InferParameter{"run": str("12")}
		},
		"bytes input": func(r *tritonpb.ModelInferRequest) { r.Inputs[0].Datatype = "BYTES" },
		"raw count":   func(r *tritonpb.ModelInferRequest) { r.RawInputContents = append(r.RawInputContents, nil) },
		"wrong shape": func(r *tritonpb.ModelInferRequest) { r.Inputs[0].Shape = []int64{1, 3} },
		"classification": func(r *tritonpb.ModelInferRequest) {
			r.Outputs = []*tritonpb.ModelInferRequest_InferRequestedOutputTensor{{Name: "y",
				Parameters: map[string]*tritonpb.InferParameter{"classification": {}}}}
		},
	}
	for name, change := range cases {
		r := base()
		change(r)
		if _, e := f.ModelInfer(context.Background(), good, r); e == nil || e.Code != codes.InvalidArgument {
			t.Errorf("%s: %v", name, e)
		}
	}
	// Luminosity sections and times are refused by name, pointing at the run.
	for _, name := range []string{"lumi", "timestamp"} {
		r := base()
		r.Parameters = map[string]*tritonpb.InferParameter{"global_tag": str("GT"), name: str("7")}
		_, e := f.ModelInfer(context.Background(), good, r)
		if e == nil || e.Code != codes.InvalidArgument || !strings.Contains(e.Message, name+" is not taken") ||
			!strings.Contains(e.Message, "run") {
			t.Errorf("%s: %v", name, e)
		}
	}
}

func TestCredentialsTokenCertificateOrOpenMetadata(t *testing.T) {
	f, auth := front(t)
	ctx := context.Background()
	req := &tritonpb.ModelMetadataRequest{Name: "jets"}
	if _, e := f.ModelMetadata(ctx, Call{}, req); e == nil || e.Code != codes.Unauthenticated {
		t.Errorf("anonymous metadata: %v", e)
	}
	if _, e := f.ModelMetadata(ctx, Call{ClientSubject: "CN=cms-hlt,O=CERN"}, req); e != nil {
		t.Errorf("mapped certificate: %v", e)
	}
	if _, e := f.ModelMetadata(ctx, Call{ClientSubject: "CN=someone"}, req); e == nil || e.Code != codes.Unauthenticated {
		t.Errorf("unmapped certificate: %v", e)
	}
	// A token, when sent, decides (a certificate does not rescue a bad token).
	if _, e := f.ModelMetadata(ctx, Call{Authorization: "Bearer bad", ClientSubject: "CN=cms-hlt,O=CERN"}, req); e == nil {
		t.Error("a bad token passed with a certificate")
	}
	f.OpenMetadata = true
	if _, e := f.ModelMetadata(ctx, Call{}, req); e != nil {
		t.Errorf("open metadata: %v", e)
	}
	infer := &tritonpb.ModelInferRequest{ModelName: "jets"}
	if _, e := f.ModelInfer(ctx, Call{}, infer); e == nil || e.Code != codes.Unauthenticated {
		t.Errorf("anonymous infer with open metadata: %v", e)
	}
	if len(auth.subjects) != 2 {
		t.Errorf("certificate checks %v", auth.subjects)
	}
}

func TestMetadataConfigAndIndexDescribeTheServedVersion(t *testing.T) {
	f, _ := front(t)
	ctx := context.Background()
	md, e := f.ModelMetadata(ctx, good, &tritonpb.ModelMetadataRequest{Name: "jets", Version: "1.1"})
	if e != nil || md.Versions[0] != "1000001" || md.Inputs[0].Shape[0] != -1 || md.Inputs[0].Datatype != "FP32" {
		t.Errorf("metadata %v %v", md, e)
	}
	cfg, e := f.ModelConfig(ctx, good, &tritonpb.ModelConfigRequest{Name: "jets"})
	if e != nil || cfg.Config.MaxBatchSize != 8 || len(cfg.Config.Input[0].Dims) != 1 || cfg.Config.Input[0].DataType != tritonpb.DataType_TYPE_FP32 ||
		cfg.Config.GetDynamicBatching() == nil || cfg.Config.Parameters["beamops_parameters_version"].StringValue != "1.0" {
		t.Errorf("config %v %v", cfg, e)
	}
	// No checksum agent unless asked for (SONIC would demand its entries locally).
	if cfg.Config.GetModelRepositoryAgents() != nil {
		t.Errorf("checksums by default: %v", cfg.Config.GetModelRepositoryAgents())
	}
	// The checksum agent SONIC compares: the artifact's sha256 under the version as asked and
	// under its integer form (route() gives jets 1.0 the sha256 "ab1.0").
	f.Checksums = true
	for version, keys := range map[string][]string{"": {"1000000/model.onnx"},
		"production": {"1000000/model.onnx", "production/model.onnx"}, "1.0": {"1000000/model.onnx", "1.0/model.onnx"}} {
		cfg, e := f.ModelConfig(ctx, good, &tritonpb.ModelConfigRequest{Name: "jets", Version: version})
		agents := cfg.GetConfig().GetModelRepositoryAgents().GetAgents()
		if e != nil || len(agents) != 1 || agents[0].Name != "checksum" || len(agents[0].Parameters) != len(keys) {
			t.Fatalf("version %q: agents %v %v", version, agents, e)
		}
		for _, key := range keys {
			if agents[0].Parameters[key] != "SHA256:ab1.0" {
				t.Errorf("version %q: %s = %q", version, key, agents[0].Parameters[key])
			}
		}
	}
	index, e := f.RepositoryIndex(ctx, good, &tritonpb.RepositoryIndexRequest{})
	if e != nil || len(index.Models) != 3 {
		t.Fatalf("index %v %v", index, e)
	}
	stats, e := f.ModelStatistics(ctx, good, &tritonpb.ModelStatisticsRequest{Name: "jets"})
	if e != nil || len(stats.ModelStats) != 1 || stats.ModelStats[0].Version != "1000000" {
		t.Errorf("stats %v %v", stats, e)
	}
}
