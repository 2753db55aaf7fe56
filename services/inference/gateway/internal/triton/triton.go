// Package triton runs Predict's inference on Triton (GRPCInferenceService.ModelInfer) and maps
// its failures to clear statuses without server paths.
package triton

import (
	"context"
	"log"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

const doing = "running the model"

// ErrModelNotLoaded: Triton is up but does not have the model (being loaded, reloaded, or
// unloaded after a version switch). Compare with ==.
var ErrModelNotLoaded = rpcstatus.New(codes.Unavailable,
	"the model is not loaded in Triton right now ("+doing+"); it is being (re)loaded, retry shortly")

var errUnreachable = rpcstatus.New(codes.Unavailable, "Triton is not reachable ("+doing+"); retry shortly")

// errUnreachableModel is errUnreachable for an UNAVAILABLE whose message says the model is
// missing or not ready (Triton answers so while it unloads a model): the same answer as
// errUnreachable, but worth retrying on the deployment's new Triton model (see Retryable).
var errUnreachableModel = rpcstatus.New(codes.Unavailable, errUnreachable.Message)

// ErrModelProcessDied: the process running the model's code (a Python-backend stub) died; Triton
// answers so until the model is loaded again, which the service does when told (usage reports).
var ErrModelProcessDied = rpcstatus.New(codes.Unavailable,
	"the model's process in Triton ended ("+doing+"); it is being restarted, retry shortly")

// Retryable says whether e means that Triton does not have the model right now, so that a
// request may be retried on the deployment's new Triton model after a version switch.
func Retryable(e *rpcstatus.Error) bool { return e == ErrModelNotLoaded || e == errUnreachableModel }

// Client calls ModelInfer over a few shared connections (HTTP/2 multiplexes the calls).
type Client struct {
	conns   []*grpc.ClientConn
	stubs   []tritonpb.GRPCInferenceServiceClient
	next    atomic.Uint32
	timeout time.Duration

	warnMu   sync.Mutex
	warnedAt time.Time
}

// Dial prepares connections to Triton's gRPC endpoint (host:port); they connect lazily and
// reconnect quickly (100 ms .. 1 s) after Triton restarts.
func Dial(target string, connections int, timeout time.Duration) (*Client, error) {
	if connections < 1 {
		connections = 1
	}
	c := &Client{timeout: timeout}
	for i := 0; i < connections; i++ {
		conn, err := grpc.NewClient(target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec{}),
				grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: 5 * time.Second,
			}),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 20 * time.Second}),
			grpc.WithInitialWindowSize(4<<20), grpc.WithInitialConnWindowSize(16<<20),
			grpc.WithReadBufferSize(256<<10), grpc.WithWriteBufferSize(256<<10),
		)
		if err != nil {
			c.Close()
			return nil, err
		}
		conn.Connect()
		c.conns = append(c.conns, conn)
		c.stubs = append(c.stubs, tritonpb.NewGRPCInferenceServiceClient(conn))
	}
	return c, nil
}

// Close closes the connections.
func (c *Client) Close() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

// Infer is TritonBackend.infer: runs inputs (already checked, in Triton's shapes) on model and
// returns the requested outputs, in that order, in Triton's shapes. Failures are the errors of
// TritonBackend._error and of its answer checks; ErrModelNotLoaded when Triton lacks the model.
func (c *Client) Infer(ctx context.Context, model string, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error) {
	ins := make([]tritonpb.ModelInferRequest_InferInputTensor, len(inputs))
	inPtrs := make([]*tritonpb.ModelInferRequest_InferInputTensor, len(inputs))
	raw := make([][]byte, len(inputs))
	for i := range inputs {
		t := &inputs[i]
		ins[i].Name, ins[i].Datatype, ins[i].Shape = t.Name, tensor.WireType(t.Dtype), t.Shape
		inPtrs[i] = &ins[i]
		raw[i] = t.Data
	}
	outs := make([]tritonpb.ModelInferRequest_InferRequestedOutputTensor, len(outputs))
	outPtrs := make([]*tritonpb.ModelInferRequest_InferRequestedOutputTensor, len(outputs))
	for i, name := range outputs {
		outs[i].Name = name
		outPtrs[i] = &outs[i]
	}
	req := &tritonpb.ModelInferRequest{ModelName: model, Inputs: inPtrs, Outputs: outPtrs, RawInputContents: raw}

	stub := c.stubs[0]
	if len(c.stubs) > 1 {
		stub = c.stubs[int(c.next.Add(1))%len(c.stubs)]
	}
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	reply, err := stub.ModelInfer(callCtx, req)
	cancel()
	if err != nil {
		return nil, c.mapError(err)
	}
	return answer(reply, outputs)
}

// answer applies the checks of TritonBackend.infer to Triton's reply.
func answer(reply *tritonpb.ModelInferResponse, outputs []string) ([]tensor.Tensor, *rpcstatus.Error) {
	raw := reply.RawOutputContents
	if len(raw) != len(reply.Outputs) {
		return nil, rpcstatus.New(codes.FailedPrecondition,
			"Triton failed running the model: it answered without raw output contents")
	}
	got := make([]tensor.Tensor, len(reply.Outputs))
	for i, out := range reply.Outputs {
		dtype, ok := tensor.FromWire(out.Datatype)
		if !ok {
			return nil, rpcstatus.New(codes.FailedPrecondition, "Triton failed running the model: output "+
				strconv.Quote(out.Name)+" has datatype "+out.Datatype)
		}
		got[i] = tensor.Tensor{Name: out.Name, Dtype: dtype, Shape: out.Shape, Data: raw[i]}
	}
	return pick(got, outputs)
}

// pick returns the outputs named in names, in that order (the last of a name wins, as in a
// Python dict).
func pick(got []tensor.Tensor, names []string) ([]tensor.Tensor, *rpcstatus.Error) {
	result := make([]tensor.Tensor, len(names))
	for i, name := range names {
		found := -1
		for j := len(got) - 1; j >= 0; j-- {
			if got[j].Name == name {
				found = j
				break
			}
		}
		if found < 0 {
			return nil, rpcstatus.New(codes.FailedPrecondition, "Triton failed running the model: no output "+
				strconv.Quote(name)+" in its answer")
		}
		result[i] = got[found]
	}
	return result, nil
}

// pathPattern: two or more /segments, a server path (letters and digits of any script).
var pathPattern = regexp.MustCompile(`(/[\p{L}\p{N}_.\-]+){2,}/?`)

// Clean is message with server paths replaced by <path>, surrounding white space removed.
func Clean(message string) string {
	return strings.TrimSpace(pathPattern.ReplaceAllString(message, "<path>"))
}

// MapError is TritonBackend._error for a failed ModelInfer.
func MapError(err error) *rpcstatus.Error {
	st := status.Convert(err)
	message := Clean(st.Message())
	lowered := strings.ToLower(message)
	if strings.Contains(lowered, "stub process") && strings.Contains(lowered, "not healthy") {
		if st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded || st.Code() == codes.Canceled {
			return errUnreachable
		}
		return ErrModelProcessDied
	}
	modelMissing := strings.Contains(lowered, "unknown model") || strings.Contains(lowered, "is not ready") ||
		strings.Contains(lowered, "not found")
	switch st.Code() {
	case codes.Unavailable:
		if modelMissing {
			return errUnreachableModel
		}
		return errUnreachable
	case codes.DeadlineExceeded, codes.Canceled:
		return errUnreachable
	}
	if modelMissing {
		return ErrModelNotLoaded
	}
	return rpcstatus.New(codes.FailedPrecondition, "Triton failed "+doing+": "+message)
}

func (c *Client) mapError(err error) *rpcstatus.Error {
	e := MapError(err)
	if e.Code == codes.FailedPrecondition {
		// The Python service logs each one; the gateway logs at most one a minute.
		c.warnMu.Lock()
		if now := time.Now(); now.Sub(c.warnedAt) > time.Minute {
			c.warnedAt = now
			log.Printf("Triton error while %s: %s (further ones are not logged for a minute)", doing, e.Message)
		}
		c.warnMu.Unlock()
	}
	return e
}
