package routes

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// Selector names what a request wants when the table alone cannot decide: a deployment the
// table does not serve, or a model narrowed by at most one of version, alias or run (with a
// global tag).
type Selector struct {
	Deployment, Model, Version, Alias, GlobalTag string
	Run                                          *int64
}

// ResolveFunc asks the control plane which deployment answers a selector
// (GatewayService.Resolve, with the caller's authorization). Its refusals (NOT_FOUND, a
// deployment that is not serving, a caller the registry refuses) are the request's answer.
type ResolveFunc func(ctx context.Context, authorization string, s Selector) (deployment string, e *rpcstatus.Error)

// TableWait is how long Resolve waits for the table that holds a deployment the control plane
// named (it serves, and its table is on its way).
const TableWait = 2 * time.Second

// Resolve is the route of the deployment the control plane names for s. A deployment it names
// that no table holds within TableWait is UNAVAILABLE: retry shortly.
func (s *Store) Resolve(ctx context.Context, resolve ResolveFunc, authorization string, sel Selector) (*Route, *rpcstatus.Error) {
	t := s.Load()
	deployment, e := resolve(ctx, authorization, sel)
	if e != nil {
		return nil, e
	}
	deadline := time.Now().Add(TableWait)
	for t != nil {
		if r := t.Get(deployment); r != nil {
			return r, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		t = s.WaitNewer(ctx, t, left)
	}
	return nil, rpcstatus.New(codes.Unavailable, fmt.Sprintf("deployment %q is not serving now; retry shortly", deployment))
}
