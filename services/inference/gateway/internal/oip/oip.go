// Package oip is the Open Inference Protocol (KServe v2) as Triton extends it, on beamops
// deployments: the methods of inference.GRPCInferenceService that Triton's clients call (stock
// tritonclient, perf_analyzer, CMSSW's SONIC, ATLAS's AthenaTriton), answered from the route
// table and served on the data plane that serves beamops Predict. Methods take and return
// Triton's messages; grpc.go carries them over gRPC, the oiphttp package over REST.
//
// beamops meaning in the standard fields: model_name is a deployment or a model; model_version
// is empty (the deployment's, or the model's only served version), a parameters version
// ("1.2"), its integer form on this protocol (versions.go) or an alias ("production"); request
// parameters "global_tag" and "run" pick the version through intervals of validity.
package oip

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/dataplane"
	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// ServerName and Extensions are what ServerMetadata answers. "statistics" is listed because
// every version has an integer form (perf_analyzer parses ModelStatistics versions as integers).
const ServerName = "beamops"

var Extensions = []string{"model_configuration", "model_repository", "statistics", "binary_tensor_data", "parameters"}

// Authorizer admits callers (auth.Cache): by their authorization value, or, when they sent
// none, by their verified client certificate.
type Authorizer interface {
	Check(ctx context.Context, authorization, method string) *rpcstatus.Error
	CheckCertificate(ctx context.Context, subject, method string) *rpcstatus.Error
	Guard(ctx context.Context, check func() *rpcstatus.Error) *rpcstatus.Error
}

// Front answers the protocol. Routes, Plane and Auth are required.
type Front struct {
	Routes   *routes.Store
	Plane    *dataplane.Plane
	Auth     Authorizer
	Resolve  routes.ResolveFunc // nil: selectors the table cannot decide are NOT_FOUND
	Deployer Deployer           // nil: RepositoryModelLoad/Unload are UNIMPLEMENTED
	Stats    *dataplane.Statistics
	// OpenMetadata: the setup calls (ServerMetadata, ModelReady, ModelMetadata, ModelConfig,
	// RepositoryIndex, ModelStatistics) answer callers without credentials, as stock CMSSW
	// makes them. Off by default: only ServerLive and ServerReady are open.
	OpenMetadata bool
	// Checksums: ModelConfig carries the artifact's sha256 as Triton's checksum agent does
	// (models.go), for clients that pin it (SONIC then demands the same entries locally).
	Checksums bool
	Version   string // the gateway's version, in ServerMetadata
}

// Call is who calls: the authorization value as it came ("Bearer <token>"; may be empty), and
// the subject (RFC 2253) of the client certificate the transport verified ("" without one).
type Call struct {
	Authorization string
	ClientSubject string
	RequestID     string
}

// Admit checks the caller of an inference method (a front may call it before it reads the
// request, so that unknown callers cost no memory; the method checks again, from the cache).
func (f *Front) Admit(ctx context.Context, c Call, method string) *rpcstatus.Error {
	return f.admit(ctx, c, method, false)
}

// admit checks the caller of a method: a token when it sent one, else its client certificate;
// setup calls pass without credentials when OpenMetadata.
func (f *Front) admit(ctx context.Context, c Call, method string, setup bool) *rpcstatus.Error {
	authorization := strings.TrimSpace(c.Authorization)
	switch {
	case authorization != "":
		return f.Auth.Check(ctx, authorization, method)
	case setup && f.OpenMetadata:
		return nil
	case c.ClientSubject != "":
		return f.Auth.CheckCertificate(ctx, c.ClientSubject, method)
	}
	return f.Auth.Check(ctx, "", method)
}

// ServerLive answers whether the gateway runs (always, without credentials).
func (f *Front) ServerLive(context.Context, Call, *tritonpb.ServerLiveRequest) (*tritonpb.ServerLiveResponse, *rpcstatus.Error) {
	return &tritonpb.ServerLiveResponse{Live: true}, nil
}

// ServerReady: the gateway has a route table from the control plane (without credentials).
func (f *Front) ServerReady(context.Context, Call, *tritonpb.ServerReadyRequest) (*tritonpb.ServerReadyResponse, *rpcstatus.Error) {
	return &tritonpb.ServerReadyResponse{Ready: f.Routes.Load().Seq > 0}, nil
}

// ServerMetadata names the server and the extensions it implements.
func (f *Front) ServerMetadata(ctx context.Context, c Call, _ *tritonpb.ServerMetadataRequest) (*tritonpb.ServerMetadataResponse, *rpcstatus.Error) {
	if e := f.admit(ctx, c, "ServerMetadata", true); e != nil {
		return nil, e
	}
	return &tritonpb.ServerMetadataResponse{Name: ServerName, Version: f.Version, Extensions: Extensions}, nil
}

func unimplemented(method string) *rpcstatus.Error {
	return rpcstatus.New(codes.Unimplemented, method+" is not part of what beamops serves of Triton's protocol "+
		"(served: health, metadata, ModelConfig, RepositoryIndex, RepositoryModelLoad/Unload, ModelStatistics, "+
		"ModelInfer, ModelStreamInfer)")
}
