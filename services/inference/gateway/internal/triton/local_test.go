package triton

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

func TestLocalPicksRequestedOutputsInOrder(t *testing.T) {
	var seen []string
	infer := Local(func(_ context.Context, model string, _ []tensor.Tensor, outputs []string) ([]tensor.Tensor, error) {
		seen = append([]string{model}, outputs...)
		return []tensor.Tensor{{Name: "probabilities", Data: []byte{1}}, {Name: "label", Data: []byte{2}},
			{Name: "label", Data: []byte{3}}}, nil // a name twice: the last one wins, as in answer
	}, time.Second)
	got, err := infer(context.Background(), "jets-1", nil, []string{"label", "probabilities"})
	if err != nil || len(got) != 2 || got[0].Name != "label" || got[0].Data[0] != 3 || got[1].Data[0] != 1 {
		t.Fatalf("%+v %v", got, err)
	}
	if len(seen) != 3 || seen[0] != "jets-1" || seen[1] != "label" {
		t.Fatalf("called with %v", seen)
	}
	_, err = infer(context.Background(), "jets-1", nil, []string{"missing"})
	if err == nil || err.Code != codes.FailedPrecondition || err.Message != "Triton failed running the model: no output \"missing\" in its answer" {
		t.Fatalf("%v", err)
	}
}

func TestLocalMapsErrorsAndBoundsTheCall(t *testing.T) {
	notFound := Local(func(context.Context, string, []tensor.Tensor, []string) ([]tensor.Tensor, error) {
		return nil, status.Error(codes.NotFound, "Request for unknown model: 'jets-1' is not found")
	}, time.Second)
	if _, err := notFound(context.Background(), "jets-1", nil, nil); err != ErrModelNotLoaded {
		t.Fatalf("%v", err)
	}
	slow := Local(func(ctx context.Context, _ string, _ []tensor.Tensor, _ []string) ([]tensor.Tensor, error) {
		<-ctx.Done() // the infer timeout ends the wait
		return nil, status.FromContextError(ctx.Err()).Err()
	}, 20*time.Millisecond)
	_, err := slow(context.Background(), "jets-1", nil, nil)
	if err == nil || err.Code != codes.Unavailable || err.Message != "Triton is not reachable (running the model); retry shortly" {
		t.Fatalf("%v", err)
	}
}
