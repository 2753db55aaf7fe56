package coalesce

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// model answers y = 2*x for int32 input x of shape [rows, width]; a row whose first value is
// -1 makes the whole call fail with INVALID_ARGUMENT ("poison"). Every call is recorded, and
// calls wait for the gate while it is closed.
type model struct {
	mu    sync.Mutex
	calls []int64 // rows per call
	gate  chan struct{}
	err   *rpcstatus.Error // returned by every call when set
}

func (m *model) run(ctx context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error) {
	m.mu.Lock()
	m.calls = append(m.calls, inputs[0].Shape[0])
	gate, err := m.gate, m.err
	m.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, rpcstatus.New(codes.Unavailable, "cancelled")
		}
	}
	if err != nil {
		return nil, err
	}
	x := inputs[0]
	y := make([]byte, len(x.Data))
	width := int(x.Shape[1])
	for i := 0; i < len(x.Data); i += 4 {
		v := int32(binary.LittleEndian.Uint32(x.Data[i:]))
		if i%(4*width) == 0 && v == -1 {
			return nil, rpcstatus.New(codes.InvalidArgument, "poison row")
		}
		binary.LittleEndian.PutUint32(y[i:], uint32(2*v))
	}
	return []tensor.Tensor{{Name: outputs[0], Dtype: tensor.Int32, Shape: append([]int64(nil), x.Shape...), Data: y}}, nil
}

func (m *model) callRows() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int64(nil), m.calls...)
}

func (m *model) waitCalls(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if len(m.callRows()) >= n {
			return
		}
	}
	t.Fatalf("expected %d calls, saw %v", n, m.callRows())
}

func ints(rows, width int, first int32) tensor.Tensor {
	data := make([]byte, rows*width*4)
	for i := 0; i < rows*width; i++ {
		binary.LittleEndian.PutUint32(data[i*4:], uint32(first+int32(i)))
	}
	return tensor.Tensor{Name: "x", Dtype: tensor.Int32, Shape: []int64{int64(rows), int64(width)}, Data: data}
}

func values(t tensor.Tensor) []int32 {
	out := make([]int32, len(t.Data)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.Data[i*4:]))
	}
	return out
}

type answer struct {
	out    []tensor.Tensor
	joined bool
	err    *rpcstatus.Error
}

// queued starts requests while a first call holds the gate, and returns their answers once the
// gate opens: they wait together in the queue.
func queued(t *testing.T, c *Coalescer, m *model, requests []tensor.Tensor) []answer {
	t.Helper()
	m.mu.Lock()
	gate := make(chan struct{})
	m.gate = gate
	m.mu.Unlock()
	first := make(chan answer, 1)
	go func() {
		out, _, err := c.Infer(context.Background(), []tensor.Tensor{ints(1, 2, 1000)}, 1, []string{"y"})
		first <- answer{out, false, err}
	}()
	m.waitCalls(t, 1)
	answers := make([]answer, len(requests))
	var wg sync.WaitGroup
	for i, x := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, joined, err := c.Infer(context.Background(), []tensor.Tensor{x}, x.Shape[0], []string{"y"})
			answers[i] = answer{out, joined, err}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		n := len(c.queue)
		c.mu.Unlock()
		if n == len(requests) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests queued", n, len(requests))
		}
	}
	close(gate)
	wg.Wait()
	if a := <-first; a.err != nil {
		t.Fatalf("first request: %v", a.err)
	}
	return answers
}

func TestSequentialRequestsGoOutAloneAtOnce(t *testing.T) {
	m := &model{}
	c := New(m.run, 64, 1<<20, 1, time.Second)
	joined := 0
	for i := 0; i < 3; i++ {
		out, shared, err := c.Infer(context.Background(), []tensor.Tensor{ints(2, 3, int32(10*i))}, 2, []string{"y"})
		if err != nil {
			t.Fatal(err)
		}
		if shared {
			joined++
		}
		if got := values(out[0]); got[0] != int32(20*i) || len(got) != 6 {
			t.Fatalf("call %d: %v", i, got)
		}
	}
	if rows := m.callRows(); len(rows) != 3 || joined != 0 {
		t.Fatalf("calls %v, joined %d", rows, joined)
	}
}

func TestRequestsWaitingTogetherShareOneCallAndGetTheirOwnRows(t *testing.T) {
	m := &model{}
	c := New(m.run, 64, 1<<20, 1, 5*time.Second)
	requests := []tensor.Tensor{ints(1, 2, 0), ints(3, 2, 100), ints(2, 2, 200)}
	answers := queued(t, c, m, requests)
	joined := 0
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("request %d: %v", i, a.err)
		}
		if a.joined {
			joined++
		}
		want := values(requests[i])
		got := values(a.out[0])
		if len(got) != len(want) || a.out[0].Shape[0] != requests[i].Shape[0] || a.out[0].Shape[1] != 2 {
			t.Fatalf("request %d: shape %v, values %v", i, a.out[0].Shape, got)
		}
		for j := range want {
			if got[j] != 2*want[j] {
				t.Fatalf("request %d: got %v for %v", i, got, want)
			}
		}
	}
	if rows := m.callRows(); len(rows) != 2 || rows[1] != 6 || joined != 3 {
		t.Fatalf("calls (rows each) %v, joined %d: want [1 6], 3", rows, joined)
	}
}

func TestOnlyCompatibleRequestsShareACallWithinTheRowLimit(t *testing.T) {
	m := &model{}
	c := New(m.run, 8, 1<<20, 1, 5*time.Second)
	// width 2, width 3 (another trailing shape), then width 2 again twice: 4+4 rows fill one call.
	requests := []tensor.Tensor{ints(4, 2, 0), ints(1, 3, 0), ints(4, 2, 50), ints(3, 2, 90)}
	for i, a := range queued(t, c, m, requests) {
		if a.err != nil || len(values(a.out[0])) != len(values(requests[i])) {
			t.Fatalf("request %d: %v", i, a.err)
		}
	}
	rows := m.callRows()[1:]
	total := int64(0)
	for _, r := range rows {
		if r > 8 {
			t.Fatalf("a call of %d rows, over the limit of 8: %v", r, rows)
		}
		total += r
	}
	if total != 12 || len(rows) != 3 {
		t.Fatalf("calls after the first: %v (want 3 calls carrying 12 rows)", rows)
	}
}

func TestAFailingRequestFailsAloneAndTheOthersAreAnswered(t *testing.T) {
	m := &model{}
	c := New(m.run, 64, 1<<20, 1, 5*time.Second)
	poison := ints(1, 2, 0)
	binary.LittleEndian.PutUint32(poison.Data, uint32(0xffffffff)) // -1
	requests := []tensor.Tensor{ints(1, 2, 7), poison, ints(2, 2, 9)}
	answers := queued(t, c, m, requests)
	if answers[1].err == nil || answers[1].err.Code != codes.InvalidArgument {
		t.Fatalf("poisoned request: %v", answers[1].err)
	}
	for _, i := range []int{0, 2} {
		if answers[i].err != nil || values(answers[i].out[0])[0] != 2*values(requests[i])[0] {
			t.Fatalf("request %d: %v", i, answers[i].err)
		}
	}
}

func TestUnavailableFailsTheWholeJoinedCallWithOneError(t *testing.T) {
	first := make(chan struct{})
	m := &model{gate: first}
	c := New(m.run, 64, 1<<20, 1, 5*time.Second)
	go c.Infer(context.Background(), []tensor.Tensor{ints(1, 2, 0)}, 1, []string{"y"})
	m.waitCalls(t, 1)
	down := rpcstatus.New(codes.Unavailable, "Triton is not reachable (running the model); retry shortly")
	m.mu.Lock()
	m.gate, m.err = nil, down // from now on every call fails at once
	m.mu.Unlock()
	answers := make(chan *rpcstatus.Error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			_, _, err := c.Infer(context.Background(), []tensor.Tensor{ints(1, 2, int32(i))}, 1, []string{"y"})
			answers <- err
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		n := len(c.queue)
		c.mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 requests queued", n)
		}
	}
	close(first)
	for i := 0; i < 3; i++ {
		if err := <-answers; err != down {
			t.Fatalf("want the same UNAVAILABLE for all, got %v", err)
		}
	}
	if calls := m.callRows(); len(calls) != 2 || calls[1] != 3 {
		t.Fatalf("one joined call, not retried request by request: calls %v", calls)
	}
}

func TestAWaitingRequestGivesUpAfterTheTimeoutOrWhenItsCallerLeaves(t *testing.T) {
	m := &model{gate: make(chan struct{})}
	defer close(m.gate)
	c := New(m.run, 64, 1<<20, 1, 100*time.Millisecond)
	go c.Infer(context.Background(), []tensor.Tensor{ints(1, 2, 0)}, 1, []string{"y"})
	m.waitCalls(t, 1)
	_, _, err := c.Infer(context.Background(), []tensor.Tensor{ints(1, 2, 0)}, 1, []string{"y"})
	if err == nil || err.Code != codes.Unavailable || err.Message !=
		"Triton did not answer within 0.1 s (running the model); retry shortly" {
		t.Fatalf("timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, _, err = c.Infer(ctx, []tensor.Tensor{ints(1, 2, 0)}, 1, []string{"y"})
	if err == nil || err.Code != codes.Canceled {
		t.Fatalf("caller gone: %v", err)
	}
}

func TestLargeRequestsDoNotWait(t *testing.T) {
	m := &model{gate: make(chan struct{})}
	c := New(m.run, 8, 1<<20, 1, 5*time.Second)
	go c.Infer(context.Background(), []tensor.Tensor{ints(1, 2, 0)}, 1, []string{"y"})
	m.waitCalls(t, 1)
	done := make(chan *rpcstatus.Error)
	go func() {
		_, _, err := c.Infer(context.Background(), []tensor.Tensor{ints(5, 2, 0)}, 5, []string{"y"}) // > half of 8 rows
		done <- err
	}()
	m.waitCalls(t, 2) // sent at once although a call is in flight
	close(m.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSetGivesOneCoalescerPerModelAndForgetsUnusedOnes(t *testing.T) {
	s := &Set{Run: func(context.Context, string, []tensor.Tensor, []string) ([]tensor.Tensor, *rpcstatus.Error) {
		return nil, nil
	}, MaxBytes: 1 << 20, MaxInFlight: 1, Timeout: time.Second}
	a := s.For("m__1_0", 64)
	if s.For("m__1_0", 64) != a || s.For("m__1_1", 64) == a {
		t.Fatal("one coalescer per Triton model")
	}
	if s.For("m__1_0", 32) == a {
		t.Fatal("a new max batch size needs a new coalescer")
	}
	b := s.For("m__1_0", 32)
	s.Retain(func(model string) bool { return model == "m__1_1" })
	if s.For("m__1_0", 32) == b {
		t.Fatal("a model no route uses is forgotten")
	}
}
