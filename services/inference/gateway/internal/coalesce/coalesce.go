// Package coalesce joins concurrent small Predict requests for one batching Triton model into one
// Triton call.
//
// Each Triton call costs a fixed amount of CPU, in the gateway and in Triton's own gRPC front,
// whatever its size. So per Triton model at most MaxInFlight calls run at once; requests that
// arrive meanwhile wait in a queue, and when a call ends the waiting requests (same input
// trailing shapes and dtypes, same outputs, at most MaxRows rows and MaxBytes bytes together) go
// to Triton as one request, concatenated along the batch axis; the outputs are cut back into each
// request's rows. A request that arrives while fewer calls are in flight goes out at once, so
// sequential callers see no added delay; so does a request too large to share a call (more than
// half of MaxRows or MaxBytes).
//
// Errors stay with their request: when a joined call fails for a reason other than UNAVAILABLE
// (Triton unreachable or the model not loaded, the same for everyone), each of its requests is
// sent again on its own. A waiting request gives up after Timeout in all, or when its caller goes
// away.
package coalesce

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// Run sends one request to the Triton model (triton.Client.Infer, the model bound).
type Run func(ctx context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error)

// Coalescer queues the requests of one Triton model.
type Coalescer struct {
	run         Run
	maxRows     int64
	maxBytes    int
	maxInFlight int
	timeout     time.Duration

	mu       sync.Mutex
	inFlight int
	queue    []*waiting
}

type waiting struct {
	ctx     context.Context
	inputs  []tensor.Tensor
	outputs []string
	rows    int64
	size    int
	key     string
	done    chan result // buffered: the sender never blocks
	taken   bool        // guarded by Coalescer.mu: in a call, or given up
}

type result struct {
	tensors []tensor.Tensor
	joined  bool // answered by a call shared with other requests
	err     *rpcstatus.Error
}

// New is a coalescer for a model that takes at most maxRows rows per call.
func New(run Run, maxRows int64, maxBytes, maxInFlight int, timeout time.Duration) *Coalescer {
	return &Coalescer{run: run, maxRows: maxRows, maxBytes: maxBytes, maxInFlight: max(1, maxInFlight), timeout: timeout}
}

// Infer runs one checked request of rows rows (inputs batch-major, in Triton's shapes); joined
// says whether its answer came from a call shared with other requests.
func (c *Coalescer) Infer(ctx context.Context, inputs []tensor.Tensor, rows int64, outputs []string) (
	out []tensor.Tensor, joined bool, err *rpcstatus.Error) {
	size := 0
	for i := range inputs {
		size += len(inputs[i].Data)
	}
	if rows*2 > c.maxRows || size*2 > c.maxBytes || rows < 1 {
		out, err = c.run(ctx, inputs, outputs) // too large to share a call: waiting would only add delay
		return out, false, err
	}
	c.mu.Lock()
	if c.inFlight < c.maxInFlight && len(c.queue) == 0 {
		c.inFlight++
		c.mu.Unlock()
		out, err = c.run(ctx, inputs, outputs)
		c.finished()
		return out, false, err
	}
	w := &waiting{ctx: ctx, inputs: inputs, outputs: outputs, rows: rows, size: size,
		key: key(inputs, outputs), done: make(chan result, 1)}
	c.queue = append(c.queue, w)
	c.kick()
	c.mu.Unlock()

	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case r := <-w.done:
		return r.tensors, r.joined, r.err
	case <-timer.C:
	case <-ctx.Done():
	}
	c.mu.Lock()
	taken := w.taken
	w.taken = true // a later call skips it
	c.mu.Unlock()
	if taken { // its call is running: its answer may still be on the way
		select {
		case r := <-w.done:
			return r.tensors, r.joined, r.err
		default:
		}
	}
	if ctx.Err() != nil {
		return nil, false, rpcstatus.New(codes.Canceled, "the call was cancelled or ran out of time while queued for Triton")
	}
	return nil, false, rpcstatus.New(codes.Unavailable, fmt.Sprintf(
		"Triton did not answer within %g s (running the model); retry shortly", c.timeout.Seconds()))
}

// finished ends a call: the waiting requests get their turn.
func (c *Coalescer) finished() {
	c.mu.Lock()
	c.inFlight--
	c.kick()
	c.mu.Unlock()
}

// kick starts calls for waiting requests while there is room (c.mu held).
func (c *Coalescer) kick() {
	for len(c.queue) > 0 && c.inFlight < c.maxInFlight {
		batch := c.take()
		if len(batch) == 0 {
			continue
		}
		c.inFlight++
		go c.send(batch)
	}
}

// take removes the first waiting request and those that can go with it from the queue (c.mu held).
func (c *Coalescer) take() []*waiting {
	q := c.queue
	for len(q) > 0 && q[0].taken { // given up while waiting
		q = q[1:]
	}
	if len(q) == 0 {
		c.queue = nil
		return nil
	}
	first := q[0]
	first.taken = true
	batch, rows, size := []*waiting{first}, first.rows, first.size
	rest := make([]*waiting, 0, len(q)-1)
	for _, w := range q[1:] {
		switch {
		case w.taken:
		case w.key == first.key && rows+w.rows <= c.maxRows && size+w.size <= c.maxBytes:
			w.taken = true
			batch = append(batch, w)
			rows += w.rows
			size += w.size
		default:
			rest = append(rest, w)
		}
	}
	c.queue = rest
	return batch
}

func (c *Coalescer) send(batch []*waiting) {
	defer c.finished()
	if len(batch) == 1 {
		c.alone(batch[0])
		return
	}
	// The joined call serves several callers: it is not cut short when one of them goes away.
	got, e := c.run(context.Background(), concatenate(batch), batch[0].outputs)
	var parts [][]tensor.Tensor
	if e == nil {
		parts, e = split(got, batch)
	}
	switch {
	case e == nil:
		for i, w := range batch {
			w.done <- result{tensors: parts[i], joined: true}
		}
	case e.Code == codes.Unavailable: // Triton unreachable or the model not loaded: the same for all
		for _, w := range batch {
			w.done <- result{err: e}
		}
	default: // let each request meet its own fate
		var wg sync.WaitGroup
		for _, w := range batch {
			wg.Add(1)
			go func() { defer wg.Done(); c.alone(w) }()
		}
		wg.Wait()
	}
}

func (c *Coalescer) alone(w *waiting) {
	got, e := c.run(w.ctx, w.inputs, w.outputs)
	w.done <- result{tensors: got, err: e}
}

// key says which requests may share a call: the same outputs, and inputs of the same names,
// dtypes and trailing shapes.
func key(inputs []tensor.Tensor, outputs []string) string {
	var b strings.Builder
	for _, o := range outputs {
		b.WriteString(o)
		b.WriteByte(0)
	}
	b.WriteByte(1)
	for i := range inputs { // the order is the signature's: check() builds it so
		t := &inputs[i]
		b.WriteString(t.Name)
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(int(t.Dtype)))
		for _, d := range t.Shape[1:] {
			b.WriteByte(',')
			b.WriteString(strconv.FormatInt(d, 10))
		}
		b.WriteByte(0)
	}
	return b.String()
}

// concatenate joins the requests' inputs along the batch axis (C order: the bytes one after
// another).
func concatenate(batch []*waiting) []tensor.Tensor {
	rows := int64(0)
	for _, w := range batch {
		rows += w.rows
	}
	out := make([]tensor.Tensor, len(batch[0].inputs))
	for i := range out {
		first := &batch[0].inputs[i]
		size := 0
		for _, w := range batch {
			size += len(w.inputs[i].Data)
		}
		data := make([]byte, 0, size)
		for _, w := range batch {
			data = append(data, w.inputs[i].Data...)
		}
		shape := append([]int64{rows}, first.Shape[1:]...)
		out[i] = tensor.Tensor{Name: first.Name, Dtype: first.Dtype, Shape: shape, Data: data}
	}
	return out
}

// split cuts batch-major outputs back into each request's rows (sharing the answer's memory).
func split(outputs []tensor.Tensor, batch []*waiting) ([][]tensor.Tensor, *rpcstatus.Error) {
	total := int64(0)
	for _, w := range batch {
		total += w.rows
	}
	parts := make([][]tensor.Tensor, len(batch))
	for i := range parts {
		parts[i] = make([]tensor.Tensor, len(outputs))
	}
	for j := range outputs {
		t := &outputs[j]
		if len(t.Shape) == 0 || t.Shape[0] != total || int64(len(t.Data))%total != 0 {
			return nil, rpcstatus.New(codes.FailedPrecondition,
				"Triton failed running the model: output "+strconv.Quote(t.Name)+" is not batch-major")
		}
		rowBytes := int64(len(t.Data)) / total
		start := int64(0)
		for i, w := range batch {
			end := start + w.rows*rowBytes
			shape := append([]int64{w.rows}, t.Shape[1:]...)
			parts[i][j] = tensor.Tensor{Name: t.Name, Dtype: t.Dtype, Shape: shape, Data: t.Data[start:end:end]}
			start = end
		}
	}
	return parts, nil
}

// Set is one Coalescer per Triton model, made on first use.
type Set struct {
	Run         func(ctx context.Context, model string, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error)
	MaxBytes    int
	MaxInFlight int
	Timeout     time.Duration

	byModel sync.Map // Triton model name -> *Coalescer
}

// For is the coalescer of a Triton model that takes at most maxRows rows per call.
func (s *Set) For(model string, maxRows int64) *Coalescer {
	if v, ok := s.byModel.Load(model); ok {
		if c := v.(*Coalescer); c.maxRows == maxRows {
			return c
		}
	}
	run := func(ctx context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error) {
		return s.Run(ctx, model, inputs, outputs)
	}
	c := New(run, maxRows, s.MaxBytes, s.MaxInFlight, s.Timeout)
	s.byModel.Store(model, c)
	return c
}

// Retain forgets the coalescers of the Triton models for which keep is false (models no route
// uses any more); requests already queued on them still finish.
func (s *Set) Retain(keep func(model string) bool) {
	s.byModel.Range(func(k, _ any) bool {
		if !keep(k.(string)) {
			s.byModel.Delete(k)
		}
		return true
	})
}
