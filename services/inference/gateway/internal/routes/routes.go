// Package routes holds the route table the Python service streams with WatchRoutes: which
// deployments the gateway serves itself, and what it needs to serve each (Triton model,
// checks, answer tail). The current table is read with one atomic load per request.
package routes

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/coalesce"
	"github.com/beamops/beamops/services/inference/gateway/internal/usage"
	"github.com/beamops/beamops/services/inference/gateway/internal/validate"
	"github.com/beamops/beamops/services/inference/gateway/internal/wire"
)

// Route is one deployment the gateway serves, prepared once per table.
type Route struct {
	Deployment  string
	Model       string
	Version     string
	TritonModel string
	MaxBatch    int64
	Drift       bool
	// FollowingAlias is the alias the deployment moves with ("" if none).
	FollowingAlias string
	ArtifactSHA256 string
	// The signature as the service sent it (shape -1: a variable dimension).
	InputSpecs, OutputSpecs []validate.Spec

	Inputs  *validate.Checker
	Outputs *validate.Outputs
	Tail    wire.Tail
	Usage   *usage.Counter // this (deployment, version)'s traffic
	Sampler *usage.Sampler // nil unless Drift
	// Coalescer joins concurrent small requests into one Triton call; nil when the Triton
	// model does not batch (MaxBatch 0) or coalescing is off.
	Coalescer *coalesce.Coalescer
}

// Table is one route table. It never changes once installed.
type Table struct {
	Seq        uint64 // local, grows with every table installed (the service's generation may restart)
	Generation uint64 // as the service sent it
	routes     map[string]*Route
	byModel    map[string][]*Route
	replaced   chan struct{} // closed when a newer table is installed
}

// Get is the route of a deployment, or nil.
func (t *Table) Get(deployment string) *Route { return t.routes[deployment] }

// Select is the route a model selector names when the table alone decides it, as the service's
// DeploymentManager._select would: of the deployments of the model serving version, or following
// alias, the first by name (every route serves). nil when none matches, or the selector needs the
// registry (a run, an alias no deployment follows) or a choice among versions (no version, no
// alias): the service answers those.
func (t *Table) Select(model, version, alias string) *Route {
	for _, r := range t.byModel[model] { // by deployment name
		if (version != "" && r.Version == version) || (alias != "" && r.FollowingAlias == alias) {
			return r
		}
	}
	return nil
}

// OfModel is the routes of a model's deployments, by deployment name.
func (t *Table) OfModel(model string) []*Route { return t.byModel[model] }

// All is every route, by deployment name.
func (t *Table) All() []*Route {
	all := make([]*Route, 0, len(t.routes))
	for _, r := range t.routes {
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Deployment < all[j].Deployment })
	return all
}

// Len is the number of routes.
func (t *Table) Len() int { return len(t.routes) }

// Store is the current table, replaced whole by Install.
type Store struct {
	cur        atomic.Pointer[Table]
	mu         sync.Mutex // serialises Install
	usage      *usage.Recorder
	coalescers *coalesce.Set
}

// NewStore starts with an empty table (everything is forwarded). Routes of batching Triton
// models get their model's coalescer from coalescers (nil: no coalescing).
func NewStore(rec *usage.Recorder, coalescers *coalesce.Set) *Store {
	s := &Store{usage: rec, coalescers: coalescers}
	s.cur.Store(&Table{routes: map[string]*Route{}, replaced: make(chan struct{})})
	return s
}

// Load is the current table.
func (s *Store) Load() *Table { return s.cur.Load() }

// Install makes routes the current table and wakes WaitNewer.
func (s *Store) Install(generation uint64, routes []*inferencev1.GatewayRoute) *Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	t := &Table{Seq: old.Seq + 1, Generation: generation, routes: make(map[string]*Route, len(routes)),
		byModel: map[string][]*Route{}, replaced: make(chan struct{})}
	models := make(map[string]bool, len(routes))
	for _, r := range routes {
		route := s.build(r)
		t.routes[route.Deployment] = route
		t.byModel[route.Model] = append(t.byModel[route.Model], route)
		models[route.TritonModel] = true
	}
	for _, list := range t.byModel {
		sort.Slice(list, func(i, j int) bool { return list[i].Deployment < list[j].Deployment })
	}
	if s.coalescers != nil {
		s.coalescers.Retain(func(model string) bool { return models[model] })
	}
	s.cur.Store(t)
	close(old.replaced)
	return t
}

func (s *Store) build(r *inferencev1.GatewayRoute) *Route {
	inputs, outputs := specs(r.GetInputs()), specs(r.GetOutputs())
	route := &Route{
		Deployment:     r.GetDeployment(),
		Model:          r.GetModel(),
		Version:        r.GetParametersVersion(),
		TritonModel:    r.GetTritonModel(),
		MaxBatch:       int64(r.GetMaxBatchSize()),
		Drift:          r.GetDrift(),
		FollowingAlias: r.GetFollowingAlias(),
		ArtifactSHA256: r.GetArtifactSha256(),
		InputSpecs:     inputs,
		OutputSpecs:    outputs,
		Inputs:         validate.NewChecker(inputs, int64(r.GetMaxBatchSize())),
		Outputs:        validate.NewOutputs(outputs),
		Tail:           wire.NewTail(r.GetDeployment(), r.GetModel(), r.GetParametersVersion()),
	}
	if s.coalescers != nil && route.MaxBatch > 0 {
		route.Coalescer = s.coalescers.For(route.TritonModel, route.MaxBatch)
	}
	if s.usage != nil {
		route.Usage = s.usage.Counter(route.Deployment, route.Version)
		if route.Drift {
			route.Sampler = s.usage.Sampler(route.Deployment)
		}
	}
	return route
}

func specs(list []*commonv1.TensorSpec) []validate.Spec {
	out := make([]validate.Spec, len(list))
	for i, s := range list {
		out[i] = validate.Spec{Name: s.GetName(), Dtype: int32(s.GetDtype()), Shape: s.GetShape()}
	}
	return out
}

// WaitNewer waits until a table newer than t is installed and returns it; nil when timeout
// passes or ctx ends first.
func (s *Store) WaitNewer(ctx context.Context, t *Table, timeout time.Duration) *Table {
	if cur := s.cur.Load(); cur.Seq > t.Seq {
		return cur
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.replaced:
		return s.cur.Load()
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return nil
	}
}
