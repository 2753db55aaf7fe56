package dataplane

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
)

// Statistics are the cumulative counts of every (deployment, parameters version) since the
// gateway started, as Triton's ModelStatistics reports them: what SONIC's server choice and
// perf_analyzer read.
type Statistics struct {
	mu   sync.RWMutex
	byID map[statsKey]*Counts
}

type statsKey struct{ deployment, version string }

// Counts of one (deployment, version). Durations are nanoseconds spent in the gateway.
type Counts struct {
	Success, SuccessNs atomic.Uint64
	Fail, FailNs       atomic.Uint64
	Inferences         atomic.Uint64 // rows answered (1 per request of a model that does not batch)
	LastMs             atomic.Int64  // when the last successful request was answered (ms since the epoch)
}

// NewStatistics is empty statistics.
func NewStatistics() *Statistics { return &Statistics{byID: map[statsKey]*Counts{}} }

// Of returns the counts of (deployment, version), created empty on first use.
func (s *Statistics) Of(deployment, version string) *Counts {
	k := statsKey{deployment, version}
	s.mu.RLock()
	c := s.byID[k]
	s.mu.RUnlock()
	if c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c = s.byID[k]; c == nil {
		c = &Counts{}
		s.byID[k] = c
	}
	return c
}

func (s *Statistics) ok(route *routes.Route, took time.Duration, rows int64, now time.Time) {
	if s == nil {
		return
	}
	c := s.Of(route.Deployment, route.Version)
	c.Success.Add(1)
	c.SuccessNs.Add(uint64(took))
	c.Inferences.Add(uint64(max(rows, 1)))
	c.LastMs.Store(now.UnixMilli())
}

func (s *Statistics) fail(route *routes.Route, took time.Duration) {
	if s == nil {
		return
	}
	c := s.Of(route.Deployment, route.Version)
	c.Fail.Add(1)
	c.FailNs.Add(uint64(took))
}
