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
}

// New is a cache in front of authorize.
func New(authorize AuthorizeFunc) *Cache {
	return &Cache{authorize: authorize, now: time.Now, entries: map[string]entry{}, refusalTTL: DefaultRefusalTTL}
}

// SetClock replaces time.Now (tests).
func (c *Cache) SetClock(now func() time.Time) { c.now = now }

// Clear drops every cached answer (a token was revoked somewhere).
func (c *Cache) Clear() {
	c.mu.Lock()
	c.entries = map[string]entry{}
	c.mu.Unlock()
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
