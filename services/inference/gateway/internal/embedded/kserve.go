package embedded

import (
	"context"
	"crypto/subtle"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// KServe answers the calls of Triton's own gRPC API (GRPCInferenceService) that the inference
// service makes through tritonclient (triton/backend.py): readiness, explicit model load and
// unload, and ModelInfer with raw tensors. It is served on loopback for the service only, behind
// RequireToken; every other method, like the repository index, shared memory, logging and trace
// settings, answers UNIMPLEMENTED.
type KServe struct {
	tritonpb.UnimplementedGRPCInferenceServiceServer
	Server *Server
}

func (k *KServe) ServerLive(context.Context, *tritonpb.ServerLiveRequest) (*tritonpb.ServerLiveResponse, error) {
	_, err := k.Server.Ready() // fails only once Triton is stopping
	return &tritonpb.ServerLiveResponse{Live: err == nil}, nil
}

func (k *KServe) ServerReady(context.Context, *tritonpb.ServerReadyRequest) (*tritonpb.ServerReadyResponse, error) {
	ready, err := k.Server.Ready()
	if err != nil {
		return nil, err
	}
	return &tritonpb.ServerReadyResponse{Ready: ready}, nil
}

func (k *KServe) ModelReady(_ context.Context, r *tritonpb.ModelReadyRequest) (*tritonpb.ModelReadyResponse, error) {
	if r.Version != "" {
		return nil, status.Error(codes.InvalidArgument, "model versions are not used: name the model only")
	}
	ready, err := k.Server.ModelReady(r.Name)
	if err != nil {
		return nil, err
	}
	return &tritonpb.ModelReadyResponse{Ready: ready}, nil
}

func (k *KServe) RepositoryModelLoad(_ context.Context, r *tritonpb.RepositoryModelLoadRequest) (*tritonpb.RepositoryModelLoadResponse, error) {
	if r.RepositoryName != "" || len(r.Parameters) > 0 {
		return nil, status.Error(codes.InvalidArgument, "only a model of the repository is loaded, by name, without parameters")
	}
	if err := k.Server.Load(r.ModelName); err != nil {
		return nil, err
	}
	return &tritonpb.RepositoryModelLoadResponse{}, nil
}

func (k *KServe) RepositoryModelUnload(_ context.Context, r *tritonpb.RepositoryModelUnloadRequest) (*tritonpb.RepositoryModelUnloadResponse, error) {
	if r.RepositoryName != "" {
		return nil, status.Error(codes.InvalidArgument, "only a model of the repository is unloaded, by name")
	}
	for name, p := range r.Parameters {
		if name != "unload_dependents" || p.GetBoolParam() { // no ensembles are deployed
			return nil, status.Error(codes.InvalidArgument, "only unload_dependents=false is understood")
		}
	}
	if err := k.Server.Unload(r.ModelName); err != nil {
		return nil, err
	}
	return &tritonpb.RepositoryModelUnloadResponse{}, nil
}

// ModelInfer takes inputs as raw_input_contents (as tritonclient sends them) and answers with
// raw_output_contents, in the order Triton gives them (as Triton's own gRPC front does).
func (k *KServe) ModelInfer(ctx context.Context, r *tritonpb.ModelInferRequest) (*tritonpb.ModelInferResponse, error) {
	if r.ModelVersion != "" || len(r.Parameters) > 0 {
		return nil, status.Error(codes.InvalidArgument, "model versions and request parameters are not used")
	}
	if len(r.RawInputContents) != len(r.Inputs) {
		return nil, status.Error(codes.InvalidArgument, "every input must come in raw_input_contents")
	}
	inputs := make([]tensor.Tensor, len(r.Inputs))
	for i, in := range r.Inputs {
		dtype, ok := tensor.FromWire(in.Datatype)
		if !ok || len(in.Parameters) > 0 || in.Contents != nil {
			return nil, status.Errorf(codes.InvalidArgument, "input %q: unsupported datatype %q, parameters or contents",
				in.Name, in.Datatype)
		}
		inputs[i] = tensor.Tensor{Name: in.Name, Dtype: dtype, Shape: in.Shape, Data: r.RawInputContents[i]}
	}
	outputs := make([]string, len(r.Outputs))
	for i, out := range r.Outputs {
		if len(out.Parameters) > 0 {
			return nil, status.Errorf(codes.InvalidArgument, "output %q: parameters are not used", out.Name)
		}
		outputs[i] = out.Name
	}
	got, err := k.Server.Infer(ctx, r.ModelName, inputs, outputs)
	if err != nil {
		return nil, err
	}
	reply := &tritonpb.ModelInferResponse{ModelName: r.ModelName, Id: r.Id,
		Outputs: make([]*tritonpb.ModelInferResponse_InferOutputTensor, len(got)), RawOutputContents: make([][]byte, len(got))}
	for i, t := range got {
		reply.Outputs[i] = &tritonpb.ModelInferResponse_InferOutputTensor{Name: t.Name, Datatype: tensor.WireType(t.Dtype), Shape: t.Shape}
		reply.RawOutputContents[i] = t.Data
	}
	return reply, nil
}

// RequireToken is the interceptor of the server KServe is served on: every call must carry
// "authorization: Bearer <token>" (the gateway's token, which the service has), so that nothing
// else on the host can load, unload or run models in this Triton.
func RequireToken(token string) grpc.UnaryServerInterceptor {
	want := []byte("Bearer " + token)
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get("authorization")
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), want) != 1 {
			return nil, status.Error(codes.Unauthenticated, "this port is for the inference service only")
		}
		return handler(ctx, req)
	}
}
