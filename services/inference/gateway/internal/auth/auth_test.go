package auth

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

type fake struct {
	mu    sync.Mutex
	calls map[string]int
	now   time.Time
	down  bool
}

func (f *fake) authorize(_ context.Context, req *inferencev1.AuthorizeRequest) (*inferencev1.AuthorizeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[req.Authorization]++
	switch {
	case f.down:
		return nil, status.Error(codes.Unavailable, "connection refused")
	case req.Authorization == "Bearer good":
		return &inferencev1.AuthorizeResponse{Principal: "alice", Role: commonv1.Role_ROLE_READER, ValidForMs: 5000}, nil
	case req.Authorization == "Bearer nocache":
		return &inferencev1.AuthorizeResponse{Principal: "bob", Role: commonv1.Role_ROLE_ADMIN, ValidForMs: 0}, nil
	case req.Authorization == "Bearer norole":
		return &inferencev1.AuthorizeResponse{Principal: "carl", ValidForMs: 5000}, nil
	case req.Authorization == "Bearer denied":
		return nil, rpcstatus.New(codes.PermissionDenied, "nope").Err("python-id")
	}
	return nil, (&rpcstatus.Error{Code: codes.Unauthenticated, Reason: "UNAUTHENTICATED",
		Message: "the token is unknown or has been revoked"}).Err("python-id")
}

func setup() (*fake, *Cache) {
	f := &fake{calls: map[string]int{}, now: time.Unix(1000, 0)}
	c := New(f.authorize)
	c.SetClock(func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now })
	return f, c
}

func (f *fake) advance(d time.Duration) { f.mu.Lock(); f.now = f.now.Add(d); f.mu.Unlock() }

func TestAdmissionsAreCachedUntilValidForMs(t *testing.T) {
	f, c := setup()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if e := c.Check(ctx, "Bearer good", "Predict"); e != nil {
			t.Fatal(e)
		}
	}
	if f.calls["Bearer good"] != 1 {
		t.Fatalf("%d calls", f.calls["Bearer good"])
	}
	f.advance(4999 * time.Millisecond)
	c.Check(ctx, "Bearer good", "Predict")
	if f.calls["Bearer good"] != 1 {
		t.Fatal("asked again before expiry")
	}
	f.advance(time.Millisecond)
	c.Check(ctx, "Bearer good", "Predict")
	if f.calls["Bearer good"] != 2 {
		t.Fatal("not asked again after expiry")
	}
	// valid_for_ms 0: never cached
	c.Check(ctx, "Bearer nocache", "Predict")
	c.Check(ctx, "Bearer nocache", "Predict")
	if f.calls["Bearer nocache"] != 2 {
		t.Fatal("an answer valid for 0 ms was cached")
	}
}

func TestRefusalsAreCachedWithTheServiceStatus(t *testing.T) {
	f, c := setup()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		e := c.Check(ctx, "Bearer bad", "Predict")
		if e == nil || e.Code != codes.Unauthenticated || e.Reason != "UNAUTHENTICATED" ||
			e.Message != "the token is unknown or has been revoked" {
			t.Fatalf("%+v", e)
		}
	}
	if f.calls["Bearer bad"] != 1 {
		t.Fatalf("%d calls", f.calls["Bearer bad"])
	}
	e := c.Check(ctx, "Bearer denied", "Predict")
	if e == nil || e.Code != codes.PermissionDenied || e.Message != "nope" {
		t.Fatalf("%+v", e)
	}
	// Refusals live as long as the last admission's valid_for_ms (default 5 s).
	f.advance(DefaultRefusalTTL)
	c.Check(ctx, "Bearer bad", "Predict")
	if f.calls["Bearer bad"] != 2 {
		t.Fatal("refusal not expired")
	}
	// No role: PERMISSION_DENIED.
	if e := c.Check(ctx, "Bearer norole", "PredictStream"); e == nil || e.Code != codes.PermissionDenied ||
		e.Message != "PredictStream needs the reader role" {
		t.Fatalf("%+v", e)
	}
}

func TestUnreachableServiceIsUnavailableAndNotCached(t *testing.T) {
	f, c := setup()
	f.down = true
	e := c.Check(context.Background(), "Bearer good", "Predict")
	if e != Unreachable || e.Code != codes.Unavailable ||
		e.Message != "the inference service is not reachable to check the caller's token; retry shortly" {
		t.Fatalf("%+v", e)
	}
	f.down = false
	if e := c.Check(context.Background(), "Bearer good", "Predict"); e != nil {
		t.Fatal(e)
	}
	if f.calls["Bearer good"] != 2 {
		t.Fatal("an unreachable answer was cached")
	}
}

func TestCacheIsDroppedWhenFull(t *testing.T) {
	f, c := setup()
	f.calls = map[string]int{}
	for i := 0; i < MaxEntries; i++ {
		c.Check(context.Background(), "Bearer x"+strconv.Itoa(i), "Predict")
	}
	if c.Len() != MaxEntries {
		t.Fatal(c.Len())
	}
	c.Check(context.Background(), "Bearer good", "Predict")
	if c.Len() != 1 {
		t.Fatalf("%d entries after overflow", c.Len())
	}
}

func TestGuardEndsAStreamWhenItsCallerIsRefusedAfterAClear(t *testing.T) {
	f, c := setup()
	token := "Bearer good"
	check := func() *rpcstatus.Error { return c.Check(context.Background(), token, "PredictStream") }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan *rpcstatus.Error, 1)
	go func() { result <- c.Guard(ctx, check) }()

	// A Clear while the caller is still admitted ends nothing.
	c.Clear()
	select {
	case e := <-result:
		t.Fatalf("admitted caller's stream ended: %v", e)
	case <-time.After(50 * time.Millisecond):
	}
	// The control plane being away ends nothing either.
	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
	c.Clear()
	select {
	case e := <-result:
		t.Fatalf("stream ended while the control plane was away: %v", e)
	case <-time.After(50 * time.Millisecond):
	}
	// Revoked: the next Clear ends it with the refusal.
	f.mu.Lock()
	f.down = false
	f.mu.Unlock()
	token = "Bearer revoked"
	c.Clear()
	select {
	case e := <-result:
		if e == nil || e.Code != codes.Unauthenticated {
			t.Fatalf("refusal %v", e)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the stream of a revoked caller did not end")
	}
	// A stream that ends first: Guard returns nil.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { result <- c.Guard(ctx2, check) }()
	cancel2()
	if e := <-result; e != nil {
		t.Fatalf("ended stream: %v", e)
	}
}

func TestGuardedStopsSendingAndReturnsTheRefusal(t *testing.T) {
	stopped := make(chan struct{})
	refuse := make(chan struct{})
	serveEnded := make(chan struct{})
	err := Guarded(context.Background(), func(ctx context.Context) *rpcstatus.Error {
		<-refuse
		return rpcstatus.New(codes.Unauthenticated, "revoked")
	}, "rid-1", func(ctx context.Context) error {
		close(refuse)
		<-ctx.Done() // serve runs until its context is cancelled
		close(serveEnded)
		return nil
	}, func() { close(stopped) })
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("%v", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("stop was not called before returning")
	}
	select {
	case <-serveEnded:
	case <-time.After(2 * time.Second):
		t.Fatal("serve's context was not cancelled")
	}
	// serve returning first: its error, no stop.
	err = Guarded(context.Background(), func(ctx context.Context) *rpcstatus.Error { <-ctx.Done(); return nil }, "rid-2",
		func(context.Context) error { return nil }, func() { t.Error("stop called") })
	if err != nil {
		t.Fatal(err)
	}
}
