// Package predict is the gateway's beamops front: it serves InferenceService.Predict and
// PredictStream on the data plane (every request, whichever deployment or model selector it
// names) and forwards every other InferenceService call unchanged to the control plane, the
// Python service.
package predict

import (
	"context"
	"fmt"
	"io"
	"strings"

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

// StreamInFlight is the most requests of one PredictStream in flight; the gateway stops
// reading the stream while that many are pending.
const StreamInFlight = 64

// Authorizer admits callers, and watches those of long streams (auth.Cache).
type Authorizer interface {
	Check(ctx context.Context, authorization, method string) *rpcstatus.Error
	Guard(ctx context.Context, check func() *rpcstatus.Error) *rpcstatus.Error
}

// Gateway is the beamops front: it serves and forwards. All fields are required except
// MaxSendBytes and OIP.
type Gateway struct {
	Routes       *routes.Store
	Auth         Authorizer
	Plane        *dataplane.Plane
	Resolve      routes.ResolveFunc // what the table alone cannot decide
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
	return g.Forward.Forward(ss, method)
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
	ctx := ss.Context()
	rid := requestID(ctx)
	ss.SetTrailer(metadata.Pairs(rpcstatus.RequestIDKey, rid))
	// The caller is checked before its request is read: an unknown one costs no memory.
	authorization := lastValue(ctx, "authorization")
	if e := g.Auth.Check(ctx, authorization, "Predict"); e != nil {
		return e.Err(rid)
	}
	fr := new(rawcodec.Frame)
	if err := ss.RecvMsg(fr); err != nil {
		if err == io.EOF {
			return rpcstatus.New(codes.InvalidArgument, "the call carried no PredictRequest").Err(rid)
		}
		return err
	}
	var req wire.Request
	err := wire.ParsePredict(fr.Bytes(), &req)
	fr.Free()
	if err != nil {
		return rpcstatus.New(codes.InvalidArgument, "the request is not a valid PredictRequest message").Err(rid)
	}
	route, e := g.routeFor(ctx, authorization, &req)
	if e != nil {
		return e.Err(rid)
	}
	served, outputs, e := g.serve(ctx, route, &req, "Predict", rid)
	if e != nil {
		return e.Err(rid)
	}
	return ss.SendMsg(&rawcodec.Frame{Data: wire.PredictResponse(outputs, &served.Tail)})
}

// routeFor is the route that answers a request: the deployment it names, or the one its model
// selector picks, from the current table when the table alone decides (routes.Table.Select),
// else as the control plane decides (an alias no deployment follows, a run, a deployment that
// is not serving: the control plane says why).
func (g *Gateway) routeFor(ctx context.Context, authorization string, req *wire.Request) (*routes.Route, *rpcstatus.Error) {
	t := g.Routes.Load()
	var sel routes.Selector
	switch req.Route {
	case wire.RouteDeployment:
		if req.Deployment == "" {
			break
		}
		if r := t.Get(req.Deployment); r != nil {
			return r, nil
		}
		sel.Deployment = req.Deployment
	case wire.RouteModel:
		s := &req.Selector
		if s.Run == nil {
			if r := t.Select(s.Model, s.Version, s.Alias); r != nil {
				return r, nil
			}
		}
		sel = routes.Selector{Model: s.Model, Version: s.Version, Alias: s.Alias, GlobalTag: s.GlobalTag, Run: s.Run}
	}
	if sel.Deployment == "" && sel.Model == "" {
		return nil, rpcstatus.InvalidField("route is required: a deployment name or a model", "route")
	}
	return g.Routes.Resolve(ctx, g.Resolve, strings.TrimSpace(authorization), sel)
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
