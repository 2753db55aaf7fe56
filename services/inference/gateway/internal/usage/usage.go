// Package usage aggregates what the gateway served per (deployment, parameters version) and
// reports it to the Python service with GatewayService.ReportUsage, which feeds the same
// Prometheus series and drift monitors as the service's own Predict. Recording takes one short
// per-counter lock; reporting never blocks Predict, and a failed report is dropped.
package usage

import (
	"context"
	"log"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"
)

// Caps per counter and report.
const (
	MaxLatencies = 5000
	MaxBatchRows = 5000
)

// Recorder holds the counters of every (deployment, version) and the drift samplers of every
// deployment. Counters live as long as the gateway (a handful per deployment); empty ones are
// left out of reports.
type Recorder struct {
	mu       sync.Mutex
	counters map[[2]string]*Counter
	list     []*Counter
	samplers map[string]*Sampler

	samplesPerS int
	sampleBytes atomic.Int64 // sample bytes in the current period
	maxBytes    int64        // cap of sample bytes per period

	deadMu sync.Mutex
	dead   map[string]struct{} // Triton models whose process died, since the last report
}

// ModelProcessDied notes that Triton answered that the process running model's code died; the
// next report tells the service, which reloads the model.
func (r *Recorder) ModelProcessDied(model string) {
	r.deadMu.Lock()
	defer r.deadMu.Unlock()
	if r.dead == nil {
		r.dead = map[string]struct{}{}
	}
	r.dead[model] = struct{}{}
}

// DrainDead takes the models noted by ModelProcessDied since the previous DrainDead, sorted.
func (r *Recorder) DrainDead() []string {
	r.deadMu.Lock()
	dead := r.dead
	r.dead = nil
	r.deadMu.Unlock()
	models := make([]string, 0, len(dead))
	for m := range dead {
		models = append(models, m)
	}
	sort.Strings(models)
	return models
}

// NewRecorder: at most samplesPerS drift samples per deployment and second, and at most
// maxSampleBytes bytes of samples per report (a report must fit one gRPC message).
func NewRecorder(samplesPerS int, maxSampleBytes int64) *Recorder {
	return &Recorder{counters: map[[2]string]*Counter{}, samplers: map[string]*Sampler{},
		samplesPerS: samplesPerS, maxBytes: maxSampleBytes}
}

// Counter is the counter of (deployment, version), made on first use.
func (r *Recorder) Counter(deployment, version string) *Counter {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [2]string{deployment, version}
	c := r.counters[k]
	if c == nil {
		c = &Counter{rec: r, deployment: deployment, version: version}
		r.counters[k] = c
		r.list = append(r.list, c)
	}
	return c
}

// Sampler is the drift sampler of a deployment (shared by its versions), made on first use.
func (r *Recorder) Sampler(deployment string) *Sampler {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.samplers[deployment]
	if s == nil {
		s = &Sampler{limit: r.samplesPerS}
		r.samplers[deployment] = s
	}
	return s
}

// Counter aggregates one (deployment, version) between two reports.
type Counter struct {
	rec                 *Recorder
	deployment, version string

	mu        sync.Mutex
	requests  uint64
	errors    map[string]uint64
	latencies []float64
	latSeen   uint64
	rows      []uint32
	rowsSeen  uint64
	samples   []*inferencev1.UsageSample
	coalesced uint64
}

// OK records an answered request: its latency in seconds, for a batching model its rows
// (rows <= 0: not recorded), and whether it shared its Triton call with other requests. Past
// the caps, latencies and rows are a uniform sample (reservoir) of the period's.
func (c *Counter) OK(latency float64, rows int64, joined bool) {
	c.mu.Lock()
	c.requests++
	if joined {
		c.coalesced++
	}
	c.latSeen++
	c.latencies = reservoir(c.latencies, c.latSeen, MaxLatencies, latency)
	if rows > 0 {
		c.rowsSeen++
		c.rows = reservoir(c.rows, c.rowsSeen, MaxBatchRows, uint32(rows))
	}
	c.mu.Unlock()
}

func reservoir[T any](list []T, seen uint64, limit int, v T) []T {
	if len(list) < limit {
		return append(list, v)
	}
	if j := rand.Uint64N(seen); j < uint64(limit) {
		list[j] = v
	}
	return list
}

// Error records a failed request by reason (the ErrorInfo reason).
func (c *Counter) Error(reason string) {
	c.mu.Lock()
	if c.errors == nil {
		c.errors = map[string]uint64{}
	}
	c.errors[reason]++
	c.mu.Unlock()
}

// ReserveSample says whether a sample of size bytes fits this period's budget (and takes it).
func (c *Counter) ReserveSample(size int64) bool {
	if c.rec.maxBytes <= 0 {
		return true
	}
	if c.rec.sampleBytes.Add(size) > c.rec.maxBytes {
		c.rec.sampleBytes.Add(-size)
		return false
	}
	return true
}

// Sample records a drift sample.
func (c *Counter) Sample(s *inferencev1.UsageSample) {
	c.mu.Lock()
	c.samples = append(c.samples, s)
	c.mu.Unlock()
}

// Sampler allows at most limit samples per second.
type Sampler struct {
	mu     sync.Mutex
	second int64
	taken  int
	limit  int
}

// Take says whether a sample may be taken now.
func (s *Sampler) Take(now time.Time) bool {
	if s.limit <= 0 {
		return false
	}
	sec := now.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec != s.second {
		s.second, s.taken = sec, 0
	}
	if s.taken >= s.limit {
		return false
	}
	s.taken++
	return true
}

// Drain takes everything recorded since the previous Drain (nil when nothing was).
func (r *Recorder) Drain() []*inferencev1.DeploymentUsage {
	r.mu.Lock()
	list := r.list
	r.mu.Unlock()
	var out []*inferencev1.DeploymentUsage
	for _, c := range list {
		c.mu.Lock()
		if c.requests == 0 && len(c.errors) == 0 && len(c.samples) == 0 {
			c.mu.Unlock()
			continue
		}
		u := &inferencev1.DeploymentUsage{
			Deployment: c.deployment, ParametersVersion: c.version, Requests: c.requests,
			Errors: c.errors, LatencySeconds: c.latencies, BatchRows: c.rows, Samples: c.samples,
			CoalescedRequests: c.coalesced,
		}
		c.requests, c.errors, c.latencies, c.latSeen, c.rows, c.rowsSeen, c.samples = 0, nil, nil, 0, nil, 0, nil
		c.coalesced = 0
		c.mu.Unlock()
		out = append(out, u)
	}
	r.sampleBytes.Store(0)
	return out
}

// Reporter sends the recorder's usage every interval while there is any, and tells the
// service which route table the gateway serves with (ReportUsageRequest.routes_generation):
// a report goes out whenever there is usage or the generation was not yet acknowledged by a
// successful report, and at once after Kick (a new table was installed), so that the service
// knows when the gateway no longer sends requests to a version it is about to unload.
type Reporter struct {
	Recorder   *Recorder
	Interval   time.Duration
	Timeout    time.Duration // of one ReportUsage call
	Generation func() uint64 // the route table's generation now (nil: always 0)
	Send       func(ctx context.Context, req *inferencev1.ReportUsageRequest) error

	once    sync.Once
	kick    chan struct{}
	acked   uint64 // the generation the last successful report carried
	failing bool
}

func (r *Reporter) kicks() chan struct{} {
	r.once.Do(func() { r.kick = make(chan struct{}, 1) })
	return r.kick
}

// Kick asks for a report now (it never blocks).
func (r *Reporter) Kick() {
	select {
	case r.kicks() <- struct{}{}:
	default:
	}
}

// Run reports until ctx ends, then sends what is left once.
func (r *Reporter) Run(ctx context.Context) {
	ticker := time.NewTicker(r.Interval)
	defer ticker.Stop()
	kick := r.kicks()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), time.Second)
			r.Report(final)
			cancel()
			return
		case <-ticker.C:
		case <-kick:
		}
		call, cancel := context.WithTimeout(ctx, r.Timeout)
		r.Report(call)
		cancel()
	}
}

// Report sends one report when there is usage, a model whose process died, or an
// unacknowledged route table generation; a failure drops the usage (logged once per streak of
// failures), the dead models and the generation are sent again next time.
func (r *Reporter) Report(ctx context.Context) {
	usage, dead := r.Recorder.Drain(), r.Recorder.DrainDead()
	var generation uint64
	if r.Generation != nil {
		generation = r.Generation()
	}
	if len(usage) == 0 && len(dead) == 0 && generation == r.acked {
		return
	}
	err := r.Send(ctx, &inferencev1.ReportUsageRequest{Deployments: usage, RoutesGeneration: generation,
		DeadTritonModels: dead})
	if err != nil {
		for _, model := range dead { // the service must hear of them: next report
			r.Recorder.ModelProcessDied(model)
		}
	}
	switch {
	case err != nil && !r.failing:
		r.failing = true
		log.Printf("usage report failed, dropped (and the following ones until a report succeeds): %v", err)
	case err == nil && r.failing:
		r.failing = false
		log.Printf("usage reports succeed again")
	}
	if err == nil {
		r.acked = generation
	}
}
