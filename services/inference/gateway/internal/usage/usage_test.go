package usage

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"
)

func TestCountersAggregateAndDrain(t *testing.T) {
	r := NewRecorder(10, 0)
	a := r.Counter("jets", "1.2")
	if r.Counter("jets", "1.2") != a {
		t.Fatal("one counter per (deployment, version)")
	}
	a.OK(0.001, 4, true)  // answered by a call shared with other requests
	a.OK(0.002, 0, false) // not a batching model: no rows
	a.Error("INVALID_ARGUMENT")
	a.Error("INVALID_ARGUMENT")
	a.Error("UNAVAILABLE")
	r.Counter("jets", "1.3").OK(0.003, 1, false)
	r.Counter("idle", "1.0")
	got := r.Drain()
	if len(got) != 2 {
		t.Fatalf("%d entries (idle counters are left out)", len(got))
	}
	u := got[0]
	if u.Deployment != "jets" || u.ParametersVersion != "1.2" || u.Requests != 2 || len(u.LatencySeconds) != 2 ||
		len(u.BatchRows) != 1 || u.BatchRows[0] != 4 || u.Errors["INVALID_ARGUMENT"] != 2 || u.Errors["UNAVAILABLE"] != 1 ||
		u.CoalescedRequests != 1 || got[1].CoalescedRequests != 0 {
		t.Fatalf("%v", u)
	}
	if got := r.Drain(); got != nil {
		t.Fatalf("drained twice: %v", got)
	}
}

func TestLatenciesAndRowsAreCapped(t *testing.T) {
	r := NewRecorder(10, 0)
	c := r.Counter("d", "v")
	for i := 0; i < 3*MaxLatencies; i++ {
		c.OK(float64(i), int64(i+1), false)
	}
	u := r.Drain()[0]
	if u.Requests != 3*MaxLatencies || len(u.LatencySeconds) != MaxLatencies || len(u.BatchRows) != MaxBatchRows {
		t.Fatalf("%d %d %d", u.Requests, len(u.LatencySeconds), len(u.BatchRows))
	}
	// A uniform sample of the period, not only its start.
	late := 0
	for _, l := range u.LatencySeconds {
		if l >= MaxLatencies {
			late++
		}
	}
	if late < MaxLatencies/2 {
		t.Fatalf("only %d of the kept latencies are from after the cap", late)
	}
}

func TestSamplerAllowsNPerSecond(t *testing.T) {
	r := NewRecorder(3, 0)
	s := r.Sampler("d")
	if r.Sampler("d") != s {
		t.Fatal("one sampler per deployment")
	}
	now := time.Unix(100, 0)
	taken := 0
	for i := 0; i < 10; i++ {
		if s.Take(now.Add(time.Duration(i) * time.Millisecond)) {
			taken++
		}
	}
	if taken != 3 {
		t.Fatalf("%d samples in a second", taken)
	}
	if !s.Take(now.Add(time.Second)) {
		t.Fatal("no sample in the next second")
	}
	if NewRecorder(0, 0).Sampler("x").Take(now) {
		t.Fatal("0 samples per second allows one")
	}
}

func TestSampleBytesAreCappedPerPeriod(t *testing.T) {
	r := NewRecorder(100, 1000)
	c := r.Counter("d", "v")
	if !c.ReserveSample(600) || c.ReserveSample(600) || !c.ReserveSample(400) {
		t.Fatal("budget")
	}
	c.Sample(&inferencev1.UsageSample{})
	if len(r.Drain()[0].Samples) != 1 {
		t.Fatal("sample lost")
	}
	if !c.ReserveSample(600) {
		t.Fatal("budget not renewed by Drain")
	}
}

// recording is a reporter of r that appends what it sends to sent, failing while *fail.
func recording(r *Recorder, sent *[]*inferencev1.ReportUsageRequest, fail *bool) *Reporter {
	return &Reporter{Recorder: r, Interval: time.Hour, Timeout: time.Second,
		Send: func(_ context.Context, req *inferencev1.ReportUsageRequest) error {
			*sent = append(*sent, req)
			if *fail {
				return errors.New("down")
			}
			return nil
		}}
}

func TestReporterSendsWhenThereIsUsageAndDropsFailures(t *testing.T) {
	r := NewRecorder(10, 0)
	var sent []*inferencev1.ReportUsageRequest
	fail := true
	rep := recording(r, &sent, &fail)
	rep.Report(context.Background())
	if len(sent) != 0 {
		t.Fatal("sent an empty report")
	}
	r.Counter("d", "v").OK(0.1, 0, false)
	rep.Report(context.Background())
	fail = false
	rep.Report(context.Background()) // the failed report was dropped: nothing left
	if len(sent) != 1 {
		t.Fatalf("%d reports", len(sent))
	}
	r.Counter("d", "v").OK(0.1, 0, false)
	rep.Report(context.Background())
	if len(sent) != 2 || sent[1].Deployments[0].Requests != 1 {
		t.Fatalf("%v", sent)
	}
}

func TestRunReportsWhatIsLeftWhenStopped(t *testing.T) {
	r := NewRecorder(10, 0)
	got := make(chan *inferencev1.ReportUsageRequest, 1)
	rep := &Reporter{Recorder: r, Interval: time.Hour, Timeout: time.Second,
		Send: func(_ context.Context, req *inferencev1.ReportUsageRequest) error { got <- req; return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.Run(ctx); close(done) }()
	r.Counter("d", "v").OK(0.1, 0, false)
	cancel()
	<-done
	select {
	case req := <-got:
		if req.Deployments[0].Requests != 1 {
			t.Fatal(req)
		}
	default:
		t.Fatal("nothing reported at stop")
	}
}

func TestReporterAcknowledgesRouteTableGenerations(t *testing.T) {
	r := NewRecorder(10, 0)
	generation := uint64(0)
	var sent []*inferencev1.ReportUsageRequest
	fail := false
	rep := recording(r, &sent, &fail)
	rep.Generation = func() uint64 { return generation }
	rep.Report(context.Background())
	if len(sent) != 0 {
		t.Fatal("reported before any table")
	}
	generation = 7 // a table arrived: reported without usage
	fail = true
	rep.Report(context.Background())
	fail = false
	rep.Report(context.Background()) // the failed one is sent again
	rep.Report(context.Background()) // acknowledged: nothing more
	if len(sent) != 2 || sent[0].RoutesGeneration != 7 || sent[1].RoutesGeneration != 7 || len(sent[1].Deployments) != 0 {
		t.Fatalf("%v", sent)
	}
	r.Counter("d", "v").OK(0.1, 0, false) // usage reports carry the generation too
	rep.Report(context.Background())
	if len(sent) != 3 || sent[2].RoutesGeneration != 7 || len(sent[2].Deployments) != 1 {
		t.Fatalf("%v", sent)
	}
}

func TestKickReportsAtOnce(t *testing.T) {
	r := NewRecorder(10, 0)
	var generation atomic.Uint64
	got := make(chan uint64, 4)
	rep := &Reporter{Recorder: r, Interval: time.Hour, Timeout: time.Second,
		Generation: generation.Load,
		Send: func(_ context.Context, req *inferencev1.ReportUsageRequest) error {
			got <- req.RoutesGeneration
			return nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rep.Run(ctx)
	generation.Store(3)
	rep.Kick()
	select {
	case g := <-got:
		if g != 3 {
			t.Fatal(g)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no report after Kick")
	}
}

func TestDeadModelsAreReportedUntilTheServiceHearsOfThem(t *testing.T) {
	r := NewRecorder(10, 0)
	var sent []*inferencev1.ReportUsageRequest
	fail := true
	rep := recording(r, &sent, &fail)
	r.ModelProcessDied("jets__2_0")
	r.ModelProcessDied("jets__1_0")
	r.ModelProcessDied("jets__2_0") // once per report
	rep.Report(context.Background())
	fail = false
	rep.Report(context.Background()) // the failed report's dead models go again
	rep.Report(context.Background()) // then nothing is left
	if len(sent) != 2 || len(sent[1].Deployments) != 0 ||
		strings.Join(sent[1].DeadTritonModels, ",") != "jets__1_0,jets__2_0" {
		t.Fatalf("%v", sent)
	}
}
