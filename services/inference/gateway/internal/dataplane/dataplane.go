// Package dataplane is the one request path of every inference front of the gateway (beamops
// Predict and PredictStream, the Open Inference Protocol over gRPC and over REST): a request
// whose route is known is checked against its signature, joined with others (coalescing), run
// on Triton, its outputs shaped, and its usage and statistics recorded. The fronts only parse
// their protocol, pick the route and write the answer.
package dataplane

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// DefaultRetryWait: how long a request that found its model unloaded waits for a route table
// that moves its deployment to another Triton model.
const DefaultRetryWait = 2 * time.Second

// InferFunc runs inputs on a Triton model (triton.Client.Infer, triton.Local).
type InferFunc func(ctx context.Context, model string, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error)

// Plane serves requests on routes. Routes, Infer and Retryable are required.
type Plane struct {
	Routes *routes.Store
	Infer  InferFunc
	// Retryable says whether an Infer error means Triton lacks the model (triton.Retryable):
	// the request is then retried once if the deployment moved to another Triton model.
	Retryable func(*rpcstatus.Error) bool
	RetryWait time.Duration // 0: DefaultRetryWait
	Stats     *Statistics   // cumulative per (deployment, version); nil: not kept
}

// Request is what every front hands the plane: tensors as beamops dtypes (their bytes alias
// the caller's message) and the output names asked for (none: all).
type Request struct {
	Inputs      []tensor.Tensor
	OutputNames []string
	Method      string // for messages ("Predict", "ModelInfer")
	RequestID   string
}

// Serve is DeploymentManager.predict for a deployment with a route: checks, Triton (with one
// retry on the deployment's new Triton model when a version switch unloaded the old one),
// output shaping, usage and statistics. It returns the route that answered.
func (p *Plane) Serve(ctx context.Context, route *routes.Route, req *Request) (*routes.Route, []tensor.Tensor, *rpcstatus.Error) {
	started := time.Now()
	var room [4]tensor.Tensor
	checked, rows, outputs, e := check(route, req, room[:0])
	var result []tensor.Tensor
	joined := false
	if e == nil {
		result, joined, e = p.infer(ctx, route, checked, rows, outputs)
		if e != nil && p.Retryable(e) {
			if next := p.switched(ctx, route); next != nil {
				route = next
				checked, rows, outputs, e = check(route, req, room[:0])
				if e == nil {
					result, joined, e = p.infer(ctx, route, checked, rows, outputs)
				}
			}
		}
	}
	now := time.Now()
	if e != nil {
		if e.Code != codes.Internal && route.Usage != nil {
			route.Usage.Error(e.Reason)
		}
		p.Stats.fail(route, now.Sub(started))
		return route, nil, e
	}
	for i := range result {
		route.Outputs.ShapeOutput(&result[i])
	}
	p.Stats.ok(route, now.Sub(started), rows, now)
	if route.Usage != nil {
		route.Usage.OK(now.Sub(started).Seconds(), rows, joined)
		if route.Sampler != nil && route.Sampler.Take(now) {
			sample(route, checked, result)
		}
	}
	return route, result, nil
}

// infer runs checked inputs on the route's Triton model, through its coalescer when it has one.
func (p *Plane) infer(ctx context.Context, route *routes.Route, checked []tensor.Tensor, rows int64,
	outputs []string) ([]tensor.Tensor, bool, *rpcstatus.Error) {
	if route.Coalescer != nil {
		return route.Coalescer.Infer(ctx, checked, rows, outputs)
	}
	result, e := p.Infer(ctx, route.TritonModel, checked, outputs)
	return result, false, e
}

func check(route *routes.Route, req *Request, room []tensor.Tensor) ([]tensor.Tensor, int64, []string, *rpcstatus.Error) {
	checked, rows, e := route.Inputs.Check(req.Inputs, room, req.Method, req.RequestID)
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
func (p *Plane) switched(ctx context.Context, route *routes.Route) *routes.Route {
	wait := p.RetryWait
	if wait == 0 {
		wait = DefaultRetryWait
	}
	deadline := time.Now().Add(wait)
	t := p.Routes.Load()
	for {
		if r := t.Get(route.Deployment); r != nil && r.TritonModel != route.TritonModel {
			return r
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		if t = p.Routes.WaitNewer(ctx, t, left); t == nil {
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
