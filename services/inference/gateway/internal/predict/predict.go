// Package predict is the gateway's gRPC handler: it serves InferenceService.Predict and
// PredictStream itself for requests that name a deployment in the route table, exactly as the
// Python service's servicer.py and DeploymentManager.predict do, and forwards every other call
// unchanged to the Python service.
package predict

import (
	"context"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/beamops/beamops/services/inference/gateway/internal/dataplane"
	"github.com/beamops/beamops/services/inference/gateway/internal/forward"
	"github.com/beamops/beamops/services/inference/gateway/internal/rawcodec"
	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
	"github.com/beamops/beamops/services/inference/gateway/internal/wire"
)

// Methods served natively.
const (
	PredictMethod = "/beamops.inference.v1.InferenceService/Predict"
	StreamMethod  = "/beamops.inference.v1.InferenceService/PredictStream"
)

// StreamInFlight is the most requests of one PredictStream in flight (servicer.py's
// STREAM_IN_FLIGHT); the gateway stops reading the stream while that many are pending.
const StreamInFlight = 64

// Authorizer admits callers (auth.Cache).
type Authorizer interface {
	Check(ctx context.Context, authorization, method string) *rpcstatus.Error
}

// Gateway is the beamops front: it serves and forwards. All fields are required except
// MaxSendBytes and OIP.
type Gateway struct {
	Routes       *routes.Store
	Auth         Authorizer
	Plane        *dataplane.Plane
	Forward      *forward.Forwarder
	MaxSendBytes int // the server's MaxSendMsgSize (0: no limit)
	// OIP serves the Open Inference Protocol's methods (inference.GRPCInferenceService/...).
	OIP func(method string, ss grpc.ServerStream) (handled bool, err error)
}

// Handle is the grpc.UnknownServiceHandler of the gateway's server.
func (g *Gateway) Handle(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	switch method {
	case PredictMethod:
		return g.predict(ss)
	case StreamMethod:
		return g.predictStream(ss)
	}
	if g.OIP != nil {
		if handled, err := g.OIP(method, ss); handled {
			return err
		}
	}
	return g.Forward.Forward(ss, method, nil)
}

func lastValue(ctx context.Context, key string) string {
	v := metadata.ValueFromIncomingContext(ctx, key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func requestID(ctx context.Context) string {
	if given := lastValue(ctx, rpcstatus.RequestIDKey); rpcstatus.ValidRequestID(given) {
		return given
	}
	return rpcstatus.NewRequestID()
}

func (g *Gateway) predict(ss grpc.ServerStream) error {
	fr := new(rawcodec.Frame)
	if err := ss.RecvMsg(fr); err != nil {
		if err == io.EOF { // no request: let the service answer as it does
			return g.Forward.Forward(ss, PredictMethod, nil)
		}
		return err
	}
	buf := fr.Bytes()
	var req wire.Request
	if wire.ParsePredict(buf, &req) != nil {
		return g.Forward.Forward(ss, PredictMethod, fr)
	}
	route := g.routeOf(&req)
	if route == nil {
		return g.Forward.Forward(ss, PredictMethod, fr)
	}
	fr.Free()

	ctx := ss.Context()
	rid := requestID(ctx)
	ss.SetTrailer(metadata.Pairs(rpcstatus.RequestIDKey, rid))
	if e := g.Auth.Check(ctx, lastValue(ctx, "authorization"), "Predict"); e != nil {
		return e.Err(rid)
	}
	served, outputs, e := g.serve(ctx, route, &req, "Predict", rid)
	if e != nil {
		return e.Err(rid)
	}
	return ss.SendMsg(&rawcodec.Frame{Data: wire.PredictResponse(outputs, &served.Tail)})
}

// routeOf is the route a request names in the current table: its deployment, or the deployment
// its model selector picks when the table alone decides (routes.Table.Select). nil: the service
// answers it.
func (g *Gateway) routeOf(req *wire.Request) *routes.Route {
	t := g.Routes.Load()
	switch req.Route {
	case wire.RouteDeployment:
		return t.Get(req.Deployment)
	case wire.RouteModel:
		if s := &req.Selector; !s.Run {
			return t.Select(s.Model, s.Version, s.Alias)
		}
	}
	return nil
}

// serve runs a routed request on the data plane.
func (g *Gateway) serve(ctx context.Context, route *routes.Route, req *wire.Request,
	method, requestID string) (*routes.Route, []tensor.Tensor, *rpcstatus.Error) {
	return g.Plane.Serve(ctx, route, &dataplane.Request{Inputs: req.Inputs, OutputNames: req.OutputNames,
		Method: method, RequestID: requestID})
}

// tooLarge is the per-request answer of a response over the send limit (gRPC's message).
func tooLarge(size, limit int) *rpcstatus.Error {
	return rpcstatus.New(codes.ResourceExhausted,
		fmt.Sprintf("grpc: trying to send message larger than max (%d vs. %d)", size, limit))
}
