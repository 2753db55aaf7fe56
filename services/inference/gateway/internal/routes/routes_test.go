package routes

import (
	"context"
	"testing"
	"time"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/coalesce"
	"github.com/beamops/beamops/services/inference/gateway/internal/usage"
)

func route(dep, triton string) *inferencev1.GatewayRoute {
	return &inferencev1.GatewayRoute{Deployment: dep, Model: "m", ParametersVersion: "1.0", TritonModel: triton,
		Inputs:       []*commonv1.TensorSpec{{Name: "x", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 4}}},
		Outputs:      []*commonv1.TensorSpec{{Name: "y", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1}}},
		MaxBatchSize: 64, Drift: dep == "drifty"}
}

func TestInstallReplacesTheTableWhole(t *testing.T) {
	s := NewStore(usage.NewRecorder(10, 0), nil)
	if s.Load().Len() != 0 || s.Load().Get("a") != nil {
		t.Fatal("starts empty")
	}
	s.Install(7, []*inferencev1.GatewayRoute{route("a", "a-1"), route("drifty", "d-1")})
	t1 := s.Load()
	if t1.Generation != 7 || t1.Seq != 1 || t1.Get("a").TritonModel != "a-1" || t1.Get("a").Inputs.MaxBatchSize() != 64 {
		t.Fatalf("%+v", t1)
	}
	if t1.Get("a").Sampler != nil || t1.Get("drifty").Sampler == nil || t1.Get("a").Usage == nil {
		t.Fatal("usage and sampler")
	}
	// A service restart may send a lower generation: it is still the newest table.
	s.Install(1, []*inferencev1.GatewayRoute{route("b", "b-1")})
	if s.Load().Get("a") != nil || s.Load().Get("b") == nil || s.Load().Seq != 2 {
		t.Fatal("not replaced whole")
	}
	if s.Load().Get("b").Usage != s.usage.Counter("b", "1.0") {
		t.Fatal("usage counter not shared")
	}
}

func TestWaitNewer(t *testing.T) {
	s := NewStore(nil, nil)
	t0 := s.Load()
	if got := s.WaitNewer(context.Background(), t0, 20*time.Millisecond); got != nil {
		t.Fatal("no newer table, yet one was returned")
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.Install(2, []*inferencev1.GatewayRoute{route("a", "a-2")})
	}()
	started := time.Now()
	got := s.WaitNewer(context.Background(), t0, 5*time.Second)
	if got == nil || got.Get("a").TritonModel != "a-2" || time.Since(started) > 2*time.Second {
		t.Fatalf("%v after %v", got, time.Since(started))
	}
	// Already newer: at once.
	if s.WaitNewer(context.Background(), t0, time.Hour) != s.Load() {
		t.Fatal("an already newer table was not returned at once")
	}
	// Context ends first.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s.WaitNewer(ctx, s.Load(), time.Hour) != nil {
		t.Fatal("context ignored")
	}
}

func TestBatchingRoutesShareTheirTritonModelsCoalescerAcrossTables(t *testing.T) {
	set := &coalesce.Set{MaxBytes: 1 << 20, MaxInFlight: 1, Timeout: time.Second}
	s := NewStore(nil, set)
	unbatched := route("u", "u-1")
	unbatched.MaxBatchSize = 0
	s.Install(1, []*inferencev1.GatewayRoute{route("a", "a-1"), unbatched})
	first := s.Load().Get("a").Coalescer
	if first == nil || s.Load().Get("u").Coalescer != nil {
		t.Fatal("a batching route has a coalescer, a non-batching one none")
	}
	s.Install(2, []*inferencev1.GatewayRoute{route("a", "a-1"), route("b", "b-1")})
	if s.Load().Get("a").Coalescer != first || s.Load().Get("b").Coalescer == first {
		t.Fatal("the same Triton model keeps its coalescer (its in-flight calls) across tables")
	}
	s.Install(3, []*inferencev1.GatewayRoute{route("b", "b-1")})
	s.Install(4, []*inferencev1.GatewayRoute{route("a", "a-1")})
	if s.Load().Get("a").Coalescer == first {
		t.Fatal("a Triton model no route used in between got its old coalescer back")
	}
}

func TestSelectPicksTheOneDeploymentTheSelectorNames(t *testing.T) {
	s := NewStore(nil, nil)
	prod := route("prod", "p-1")
	prod.FollowingAlias = "production"
	pinned := route("pinned", "q-1")
	pinned.ParametersVersion = "1.1"
	other := route("other-model", "o-1")
	other.Model = "n"
	s.Install(1, []*inferencev1.GatewayRoute{prod, pinned, other})
	tab := s.Load()
	for _, c := range []struct {
		model, version, alias, want string
	}{
		{"m", "1.0", "", "prod"},
		{"m", "1.1", "", "pinned"},
		{"m", "", "production", "prod"},
		{"m", "2.0", "", ""},     // no deployment serves it
		{"m", "", "staging", ""}, // no deployment follows it: the service asks the registry
		{"m", "", "", ""},        // a choice among versions: the service decides
		{"n", "1.1", "", ""},     // another model's version
		{"absent", "1.0", "", ""},
	} {
		got := tab.Select(c.model, c.version, c.alias)
		if (got == nil && c.want != "") || (got != nil && got.Deployment != c.want) {
			t.Errorf("Select(%q, %q, %q) = %v, want %q", c.model, c.version, c.alias, got, c.want)
		}
	}
	// Several deployments serving the version or following the alias: the first by name, as
	// the service picks (whatever order the table came in).
	twin := route("a-twin", "t-1")
	twin.FollowingAlias = "production"
	s.Install(2, []*inferencev1.GatewayRoute{prod, twin})
	if got := s.Load().Select("m", "1.0", ""); got == nil || got.Deployment != "a-twin" {
		t.Errorf("version: %v, want a-twin", got)
	}
	if got := s.Load().Select("m", "", "production"); got == nil || got.Deployment != "a-twin" {
		t.Errorf("alias: %v, want a-twin", got)
	}
}
