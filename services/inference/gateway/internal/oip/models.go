package oip

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
	"github.com/beamops/beamops/services/inference/gateway/internal/validate"
)

// Platform is what ModelMetadata and ModelConfig say runs the model: ONNX Runtime, in Triton.
const Platform = "onnxruntime_onnx"

// ModelReady: the name and version name a serving deployment (false, not an error, otherwise).
func (f *Front) ModelReady(ctx context.Context, c Call, r *tritonpb.ModelReadyRequest) (*tritonpb.ModelReadyResponse, *rpcstatus.Error) {
	if e := f.admit(ctx, c, "ModelReady", true); e != nil {
		return nil, e
	}
	route, e := f.route(ctx, c, r.GetName(), r.GetVersion(), nil)
	if e != nil && e.Code != codes.NotFound && e.Code != codes.FailedPrecondition && e.Code != codes.Unavailable {
		return nil, e
	}
	return &tritonpb.ModelReadyResponse{Ready: route != nil}, nil
}

// ModelMetadata: the served version's signature in Triton's datatypes; with batching, every
// shape starts with -1 (the batch dimension), as Triton answers.
func (f *Front) ModelMetadata(ctx context.Context, c Call, r *tritonpb.ModelMetadataRequest) (*tritonpb.ModelMetadataResponse, *rpcstatus.Error) {
	if e := f.admit(ctx, c, "ModelMetadata", true); e != nil {
		return nil, e
	}
	route, e := f.route(ctx, c, r.GetName(), r.GetVersion(), nil)
	if e != nil {
		return nil, e
	}
	return &tritonpb.ModelMetadataResponse{Name: r.GetName(), Versions: []string{IntegerVersion(route.Version)},
		Platform: Platform, Inputs: tensorMetadata(route.InputSpecs, route.MaxBatch), Outputs: tensorMetadata(route.OutputSpecs, route.MaxBatch)}, nil
}

func tensorMetadata(specs []validate.Spec, maxBatch int64) []*tritonpb.ModelMetadataResponse_TensorMetadata {
	out := make([]*tritonpb.ModelMetadataResponse_TensorMetadata, len(specs))
	for i, s := range specs {
		shape := append([]int64(nil), s.Shape...)
		if maxBatch > 0 && len(shape) > 0 {
			shape[0] = -1
		}
		out[i] = &tritonpb.ModelMetadataResponse_TensorMetadata{Name: s.Name, Datatype: tensor.WireType(s.Dtype), Shape: shape}
	}
	return out
}

// ModelConfig: what Triton's clients read of a model's configuration (SONIC: max_batch_size,
// the batching settings, model_transaction_policy), with the tensors named as in ModelMetadata
// and dims without the batch dimension when the model batches. Its parameters name the
// deployment, parameters version and artifact sha256.
func (f *Front) ModelConfig(ctx context.Context, c Call, r *tritonpb.ModelConfigRequest) (*tritonpb.ModelConfigResponse, *rpcstatus.Error) {
	if e := f.admit(ctx, c, "ModelConfig", true); e != nil {
		return nil, e
	}
	route, e := f.route(ctx, c, r.GetName(), r.GetVersion(), nil)
	if e != nil {
		return nil, e
	}
	cfg := &tritonpb.ModelConfig{
		Name: r.GetName(), Platform: Platform, MaxBatchSize: int32(route.MaxBatch),
		ModelTransactionPolicy: &tritonpb.ModelTransactionPolicy{Decoupled: false},
		Parameters: map[string]*tritonpb.ModelParameter{
			"beamops_deployment":         {StringValue: route.Deployment},
			"beamops_model":              {StringValue: route.Model},
			"beamops_parameters_version": {StringValue: route.Version},
			"beamops_artifact_sha256":    {StringValue: route.ArtifactSHA256},
		},
	}
	if route.MaxBatch > 0 {
		cfg.SchedulingChoice = &tritonpb.ModelConfig_DynamicBatching{DynamicBatching: &tritonpb.ModelDynamicBatching{}}
	}
	if f.Checksums {
		cfg.ModelRepositoryAgents = checksums(route, r.GetVersion())
	}
	for _, s := range route.InputSpecs {
		cfg.Input = append(cfg.Input, &tritonpb.ModelInput{Name: s.Name, DataType: configType(s.Dtype), Dims: dims(s.Shape, route.MaxBatch)})
	}
	for _, s := range route.OutputSpecs {
		cfg.Output = append(cfg.Output, &tritonpb.ModelOutput{Name: s.Name, DataType: configType(s.Dtype), Dims: dims(s.Shape, route.MaxBatch)})
	}
	return &tritonpb.ModelConfigResponse{Config: cfg}, nil
}

// ArtifactFile is the name a served artifact has in ModelConfig's checksum entries.
const ArtifactFile = "model.onnx"

// checksums is Triton's checksum repository agent entry for what answers: the artifact's
// sha256 keyed "<version>/model.onnx", under the version as asked and under its integer form.
// CMSSW's SONIC compares the entries of the version it asks for with those of its local
// config.pbtxt, both ways (an entry only one side has differs too), and refuses a server
// whose artifact differs: a job pins what it runs. Hence Front.Checksums, off by default.
func checksums(route *routes.Route, asked string) *tritonpb.ModelRepositoryAgents {
	if route.ArtifactSHA256 == "" {
		return nil
	}
	value := "SHA256:" + route.ArtifactSHA256
	params := map[string]string{IntegerVersion(route.Version) + "/" + ArtifactFile: value}
	if asked != "" {
		params[asked+"/"+ArtifactFile] = value
	}
	return &tritonpb.ModelRepositoryAgents{Agents: []*tritonpb.ModelRepositoryAgents_Agent{{Name: "checksum", Parameters: params}}}
}

func configType(dtype int32) tritonpb.DataType {
	return tritonpb.DataType(tritonpb.DataType_value["TYPE_"+tensor.WireType(dtype)])
}

func dims(shape []int64, maxBatch int64) []int64 {
	if maxBatch > 0 && len(shape) > 0 {
		shape = shape[1:]
	}
	return append([]int64{}, shape...)
}

// RepositoryIndex lists every serving deployment, and every model by its name where that is
// not a deployment's, each with the integer form of the version it serves, READY.
func (f *Front) RepositoryIndex(ctx context.Context, c Call, r *tritonpb.RepositoryIndexRequest) (*tritonpb.RepositoryIndexResponse, *rpcstatus.Error) {
	if e := f.admit(ctx, c, "RepositoryIndex", true); e != nil {
		return nil, e
	}
	if r.GetRepositoryName() != "" {
		return nil, rpcstatus.InvalidField("beamops has one repository: leave repository_name empty", "repository_name")
	}
	t := f.Routes.Load()
	var out []*tritonpb.RepositoryIndexResponse_ModelIndex
	seen := map[string]bool{}
	for _, route := range t.All() {
		out = append(out, &tritonpb.RepositoryIndexResponse_ModelIndex{Name: route.Deployment, Version: IntegerVersion(route.Version), State: "READY"})
	}
	for _, route := range t.All() {
		key := route.Model + "\x00" + route.Version
		if t.Get(route.Model) != nil || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, &tritonpb.RepositoryIndexResponse_ModelIndex{Name: route.Model, Version: IntegerVersion(route.Version), State: "READY"})
	}
	return &tritonpb.RepositoryIndexResponse{Models: out}, nil
}

// ModelStatistics: the gateway's cumulative counts of each answering (deployment, version) since
// it started, under the name asked for (every deployment when the name is empty).
func (f *Front) ModelStatistics(ctx context.Context, c Call, r *tritonpb.ModelStatisticsRequest) (*tritonpb.ModelStatisticsResponse, *rpcstatus.Error) {
	if e := f.admit(ctx, c, "ModelStatistics", true); e != nil {
		return nil, e
	}
	var list []*routes.Route
	var names []string
	if r.GetName() == "" {
		for _, route := range f.Routes.Load().All() {
			list, names = append(list, route), append(names, route.Deployment)
		}
	} else {
		route, e := f.route(ctx, c, r.GetName(), r.GetVersion(), nil)
		if e != nil {
			return nil, e
		}
		list, names = []*routes.Route{route}, []string{r.GetName()}
	}
	out := &tritonpb.ModelStatisticsResponse{}
	for i, route := range list {
		out.ModelStats = append(out.ModelStats, f.statistics(names[i], route))
	}
	return out, nil
}

func (f *Front) statistics(name string, route *routes.Route) *tritonpb.ModelStatistics {
	s := &tritonpb.ModelStatistics{Name: name, Version: IntegerVersion(route.Version), InferenceStats: &tritonpb.InferStatistics{
		Success: &tritonpb.StatisticDuration{}, Fail: &tritonpb.StatisticDuration{}, Queue: &tritonpb.StatisticDuration{},
		ComputeInput: &tritonpb.StatisticDuration{}, ComputeInfer: &tritonpb.StatisticDuration{}, ComputeOutput: &tritonpb.StatisticDuration{},
		CacheHit: &tritonpb.StatisticDuration{}, CacheMiss: &tritonpb.StatisticDuration{}}}
	if f.Stats == nil {
		return s
	}
	c := f.Stats.Of(route.Deployment, route.Version)
	ok, okNs := c.Success.Load(), c.SuccessNs.Load()
	s.LastInference = uint64(max(c.LastMs.Load(), 0))
	s.InferenceCount = c.Inferences.Load()
	s.ExecutionCount = ok
	s.InferenceStats.Success = &tritonpb.StatisticDuration{Count: ok, Ns: okNs}
	s.InferenceStats.Fail = &tritonpb.StatisticDuration{Count: c.Fail.Load(), Ns: c.FailNs.Load()}
	// The gateway times a request as a whole: all of it counts as compute.
	s.InferenceStats.ComputeInfer = &tritonpb.StatisticDuration{Count: ok, Ns: okNs}
	s.InferenceStats.ComputeInput = &tritonpb.StatisticDuration{Count: ok}
	s.InferenceStats.ComputeOutput = &tritonpb.StatisticDuration{Count: ok}
	s.InferenceStats.Queue = &tritonpb.StatisticDuration{Count: ok}
	return s
}

// knownRequestParameters are the request parameters understood (any other is refused, so that
// a misspelt "global_tag" never silently picks other conditions).
var knownRequestParameters = map[string]bool{
	"global_tag": true, "run": true,
	// Triton's own, without effect here (no priorities, no decoupled models; the timeout is the
	// gateway's). perf_analyzer sends triton_enable_empty_final_response on every request.
	"priority": true, "timeout": true, "binary_data_output": true, "triton_enable_empty_final_response": true,
}

func unknownParameter(name string) *rpcstatus.Error {
	switch name {
	case "lumi", "timestamp":
		return rpcstatus.InvalidField("request parameter "+name+" is not taken: intervals of validity are keyed by run "+
			"here; send global_tag and run", "parameters")
	}
	return rpcstatus.InvalidField("request parameter "+strings.TrimSpace(name)+" is not understood (understood: "+
		"global_tag and run, to pick the parameters version by interval of validity; Triton's priority, timeout, "+
		"binary_data_output, triton_enable_empty_final_response)", "parameters")
}
