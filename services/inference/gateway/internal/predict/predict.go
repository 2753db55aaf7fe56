// Package predict is the gateway's gRPC handler: it serves InferenceService.Predict and
// PredictStream itself for requests that name a deployment in the route table, exactly as the
// Python service's servicer.py and DeploymentManager.predict do, and forwards every other call
// unchanged to the Python service.
package predict

import (
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

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

// DefaultRetryWait: how long a request that found its model unloaded waits for a route table
// that moves its deployment to another Triton model.
const DefaultRetryWait = 2 * time.Second

// InferFunc runs inputs on a Triton model (triton.Client.Infer).
type InferFunc func(ctx context.Context, model string, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error)

// Authorizer admits callers (auth.Cache).
type Authorizer interface {
	Check(ctx context.Context, authorization, method string) *rpcstatus.Error
}

// Gateway serves and forwards. All fields are required except RetryWait and MaxSendBytes.
type Gateway struct {
	Routes  *routes.Store
	Auth    Authorizer
	Infer   InferFunc
	Forward *forward.Forwarder
	// Retryable says whether an Infer error means Triton lacks the model (triton.Retryable):
	// the request is then retried once if the deployment moved to another Triton model.
	Retryable    func(*rpcstatus.Error) bool
	RetryWait    time.Duration
	MaxSendBytes int // the server's MaxSendMsgSize (0: no limit)
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

// serve is DeploymentManager.predict for a deployment with a route: checks, Triton (with one
// retry on the deployment's new Triton model when a version switch unloaded the old one),
// output shaping and usage. It returns the route that answered.
func (g *Gateway) serve(ctx context.Context, route *routes.Route, req *wire.Request,
	method, requestID string) (*routes.Route, []tensor.Tensor, *rpcstatus.Error) {
	started := time.Now()
	var room [4]tensor.Tensor
	checked, rows, outputs, e := check(route, req, room[:0], method, requestID)
	var result []tensor.Tensor
	joined := false
	if e == nil {
		result, joined, e = g.infer(ctx, route, checked, rows, outputs)
		if e != nil && g.Retryable(e) {
			if next := g.switched(ctx, route); next != nil {
				route = next
				checked, rows, outputs, e = check(route, req, room[:0], method, requestID)
				if e == nil {
					result, joined, e = g.infer(ctx, route, checked, rows, outputs)
				}
			}
		}
	}
	if e != nil {
		if e.Code != codes.Internal && route.Usage != nil {
			route.Usage.Error(e.Reason)
		}
		return route, nil, e
	}
	for i := range result {
		route.Outputs.ShapeOutput(&result[i])
	}
	if route.Usage != nil {
		now := time.Now()
		route.Usage.OK(now.Sub(started).Seconds(), rows, joined)
		if route.Sampler != nil && route.Sampler.Take(now) {
			sample(route, checked, result)
		}
	}
	return route, result, nil
}

// infer runs checked inputs on the route's Triton model, through its coalescer when it has one.
func (g *Gateway) infer(ctx context.Context, route *routes.Route, checked []tensor.Tensor, rows int64,
	outputs []string) ([]tensor.Tensor, bool, *rpcstatus.Error) {
	if route.Coalescer != nil {
		return route.Coalescer.Infer(ctx, checked, rows, outputs)
	}
	result, e := g.Infer(ctx, route.TritonModel, checked, outputs)
	return result, false, e
}

func check(route *routes.Route, req *wire.Request, room []tensor.Tensor, method, requestID string) (
	[]tensor.Tensor, int64, []string, *rpcstatus.Error) {
	checked, rows, e := route.Inputs.Check(req.Inputs, room, method, requestID)
	if e != nil {
		return nil, 0, nil, e
	}
	outputs, e := route.Outputs.Check(req.OutputNames)
	if e != nil {
		return nil, 0, nil, e
	}
	return checked, rows, outputs, nil
}

// switched is the deployment's route on another Triton model: in the current table, or in one
// that arrives within RetryWait; nil otherwise.
func (g *Gateway) switched(ctx context.Context, route *routes.Route) *routes.Route {
	wait := g.RetryWait
	if wait == 0 {
		wait = DefaultRetryWait
	}
	deadline := time.Now().Add(wait)
	t := g.Routes.Load()
	for {
		if r := t.Get(route.Deployment); r != nil && r.TritonModel != route.TritonModel {
			return r
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		if t = g.Routes.WaitNewer(ctx, t, left); t == nil {
			return nil
		}
	}
}

// sample records the checked inputs and the returned outputs for drift monitoring (the tensors
// share the request's and Triton's memory, which is never written again).
func sample(route *routes.Route, inputs, outputs []tensor.Tensor) {
	size := int64(0)
	for i := range inputs {
		size += int64(len(inputs[i].Data))
	}
	for i := range outputs {
		size += int64(len(outputs[i].Data))
	}
	if !route.Usage.ReserveSample(size) {
		return
	}
	s := &inferencev1.UsageSample{Inputs: make([]*commonv1.Tensor, len(inputs)), Outputs: make([]*commonv1.Tensor, len(outputs))}
	for i := range inputs {
		s.Inputs[i] = inputs[i].Proto()
	}
	for i := range outputs {
		s.Outputs[i] = outputs[i].Proto()
	}
	route.Usage.Sample(s)
}

// tooLarge is the per-request answer of a response over the send limit (gRPC's message).
func tooLarge(size, limit int) *rpcstatus.Error {
	return rpcstatus.New(codes.ResourceExhausted,
		fmt.Sprintf("grpc: trying to send message larger than max (%d vs. %d)", size, limit))
}
