// Package auth checks Predict callers with GatewayService.Authorize and caches the answers:
// key = the caller's `authorization` metadata value as it came; an entry lives
// AuthorizeResponse.valid_for_ms; refusals (UNAUTHENTICATED, PERMISSION_DENIED) are cached too,
// with the status the service returned; at most MaxEntries entries (all dropped when full).
package auth

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// MaxEntries caps the cache.
const MaxEntries = 10000

// DefaultRefusalTTL: how long a refusal is cached before any answer told how long answers are
// valid (refusals carry no valid_for_ms; they are kept as long as the last valid_for_ms).
const DefaultRefusalTTL = 5 * time.Second

// CallTimeout bounds one Authorize call.
const CallTimeout = 5 * time.Second

// Unreachable is the error when the service cannot answer Authorize.
var Unreachable = rpcstatus.New(codes.Unavailable,
	"the inference service is not reachable to check the caller's token; retry shortly")

// AuthorizeFunc calls GatewayService.Authorize.
type AuthorizeFunc func(ctx context.Context, req *inferencev1.AuthorizeRequest) (*inferencev1.AuthorizeResponse, error)

type entry struct {
	expires time.Time
	err     *rpcstatus.Error // nil: admitted
}

// Cache is the answer cache in front of Authorize.
type Cache struct {
	authorize AuthorizeFunc
	now       func() time.Time

	mu         sync.RWMutex
	entries    map[string]entry
	refusalTTL time.Duration
	changed    chan struct{} // closed (and replaced) by Clear
}

// New is a cache in front of authorize.
func New(authorize AuthorizeFunc) *Cache {
	return &Cache{authorize: authorize, now: time.Now, entries: map[string]entry{}, refusalTTL: DefaultRefusalTTL,
		changed: make(chan struct{})}
}

// SetClock replaces time.Now (tests).
func (c *Cache) SetClock(now func() time.Time) { c.now = now }

// Clear drops every cached answer (a token was revoked somewhere) and wakes the guards of
// long streams (Guard), which check their callers again.
func (c *Cache) Clear() {
	c.mu.Lock()
	c.entries = map[string]entry{}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// StreamRecheck is how often Guard checks a long stream's caller even without a Clear (a
// token that expires: a JWT's exp).
const StreamRecheck = 5 * time.Second

// Guard watches the caller of a long stream: it returns check's refusal (UNAUTHENTICATED or
// PERMISSION_DENIED) as soon as the caller is refused, checking again at every Clear and every
// StreamRecheck; nil once ctx ends. A control plane that cannot be asked ends nothing.
func (c *Cache) Guard(ctx context.Context, check func() *rpcstatus.Error) *rpcstatus.Error {
	tick := time.NewTicker(StreamRecheck)
	defer tick.Stop()
	for {
		c.mu.RLock()
		changed := c.changed
		c.mu.RUnlock()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		}
		if e := check(); e != nil && (e.Code == codes.Unauthenticated || e.Code == codes.PermissionDenied) {
			return e
		}
	}
}

// Guarded runs serve, a long stream's handler, until it returns, or until guard refuses the
// caller: then stop is called (the stream sends nothing more after it returns), serve's context
// is cancelled, and the call ends at once with the refusal.
func Guarded(ctx context.Context, guard func(context.Context) *rpcstatus.Error, requestID string,
	serve func(context.Context) error, stop func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	refused := make(chan *rpcstatus.Error, 1)
	go func() {
		if e := guard(ctx); e != nil {
			refused <- e
		}
	}()
	select {
	case err := <-done:
		return err
	case e := <-refused:
		stop()
		return e.Err(requestID)
	}
}

// Len is the number of cached answers.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Check admits the caller of method (e.g. "Predict") with this authorization value, or returns
// the error the caller gets: the service's refusal as it came, PERMISSION_DENIED below the
// reader role, or UNAVAILABLE when the service cannot be asked.
func (c *Cache) Check(ctx context.Context, authorization, method string) *rpcstatus.Error {
	return c.check(ctx, authorization, &inferencev1.AuthorizeRequest{Authorization: authorization}, method)
}

// CheckCertificate admits a caller that sent no authorization by the subject of the client
// certificate the gateway verified: the principal the service maps it to.
func (c *Cache) CheckCertificate(ctx context.Context, subject, method string) *rpcstatus.Error {
	return c.check(ctx, "\x00certificate:"+subject, &inferencev1.AuthorizeRequest{ClientCertificateSubject: subject}, method)
}

func (c *Cache) check(ctx context.Context, key string, req *inferencev1.AuthorizeRequest, method string) *rpcstatus.Error {
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.err
	}
	call, cancel := context.WithTimeout(ctx, CallTimeout)
	resp, err := c.authorize(call, req)
	cancel()
	var ttl time.Duration
	if err != nil {
		st := status.Convert(err)
		if st.Code() != codes.Unauthenticated && st.Code() != codes.PermissionDenied {
			return Unreachable
		}
		e = entry{err: rpcstatus.FromStatus(st)}
		c.mu.RLock()
		ttl = c.refusalTTL
		c.mu.RUnlock()
	} else {
		ttl = time.Duration(resp.GetValidForMs()) * time.Millisecond
		e = entry{}
		if resp.GetRole() < commonv1.Role_ROLE_READER {
			e.err = rpcstatus.New(codes.PermissionDenied, method+" needs the reader role")
		}
	}
	c.mu.Lock()
	if err == nil {
		c.refusalTTL = ttl // refusals are kept as long as admissions
	}
	if ttl > 0 {
		e.expires = c.now().Add(ttl)
		if len(c.entries) >= MaxEntries {
			c.entries = make(map[string]entry, 64)
		}
		c.entries[key] = e
	} else if ok {
		delete(c.entries, key)
	}
	c.mu.Unlock()
	return e.err
}
