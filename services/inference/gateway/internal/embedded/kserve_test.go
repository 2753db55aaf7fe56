package embedded

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestTritonAPIOnlyForTheService(t *testing.T) {
	check := RequireToken("s3cret")
	handled := 0
	handler := func(context.Context, any) (any, error) { handled++; return "ok", nil }
	for _, md := range []metadata.MD{
		nil,
		metadata.Pairs("authorization", "Bearer wrong"),
		metadata.Pairs("authorization", "s3cret"),
		metadata.Pairs("authorization", "Bearer s3cret", "authorization", "Bearer s3cret"),
	} {
		ctx := metadata.NewIncomingContext(context.Background(), md)
		if _, err := check(ctx, nil, nil, handler); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%v: %v", md, err)
		}
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer s3cret"))
	if got, err := check(ctx, nil, nil, handler); err != nil || got != "ok" || handled != 1 {
		t.Fatalf("%v %v %d", got, err, handled)
	}
}
