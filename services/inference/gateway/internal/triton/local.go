package triton

import (
	"context"
	"time"

	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// LocalInfer runs a request on a Triton in this process (embedded.Server.Infer): outputs in
// Triton's order, failures as gRPC status errors.
type LocalInfer func(ctx context.Context, model string, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, error)

// Local is Client.Infer for a Triton in this process: the same timeout, the same answer checks
// and the same error mapping, without the gRPC hop.
func Local(infer LocalInfer, timeout time.Duration) func(context.Context, string, []tensor.Tensor, []string) ([]tensor.Tensor, *rpcstatus.Error) {
	return func(ctx context.Context, model string, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error) {
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		got, err := infer(callCtx, model, inputs, outputs)
		cancel()
		if err != nil {
			return nil, MapError(err)
		}
		return pick(got, outputs)
	}
}
