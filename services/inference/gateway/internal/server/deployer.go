package server

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// deployTimeout bounds a Deploy made for RepositoryModelLoad (a load waits until it serves).
const deployTimeout = 10 * time.Minute

// deployer calls the service's InferenceService.Deploy and Undeploy with the caller's
// authorization and request id (oip.Deployer).
type deployer struct {
	stub inferencev1.InferenceServiceClient
}

func newDeployer(conn *grpc.ClientConn) *deployer {
	return &deployer{stub: inferencev1.NewInferenceServiceClient(conn)}
}

func (d *deployer) Deploy(ctx context.Context, authorization string, req *inferencev1.DeployRequest) *rpcstatus.Error {
	ctx, cancel := d.call(ctx, authorization)
	defer cancel()
	_, err := d.stub.Deploy(ctx, req)
	return asError(err)
}

func (d *deployer) Undeploy(ctx context.Context, authorization string, req *inferencev1.UndeployRequest) *rpcstatus.Error {
	ctx, cancel := d.call(ctx, authorization)
	defer cancel()
	_, err := d.stub.Undeploy(ctx, req)
	return asError(err)
}

func (d *deployer) call(ctx context.Context, authorization string) (context.Context, context.CancelFunc) {
	md := metadata.Pairs("authorization", authorization)
	if in, ok := metadata.FromIncomingContext(ctx); ok {
		if id := in.Get(rpcstatus.RequestIDKey); len(id) > 0 {
			md.Set(rpcstatus.RequestIDKey, id[len(id)-1])
		}
	}
	ctx, cancel := context.WithTimeout(ctx, deployTimeout)
	return metadata.NewOutgoingContext(ctx, md), cancel
}

func asError(err error) *rpcstatus.Error {
	if err == nil {
		return nil
	}
	return rpcstatus.FromStatus(status.Convert(err))
}
