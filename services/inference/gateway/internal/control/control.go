// Package control is the gateway's side of GatewayService (served by the Python inference
// service): the route table from WatchRoutes, kept up to date across reconnects, and the
// Authorize and ReportUsage calls, all made with the gateway's token.
package control

import (
	"context"
	"io"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
)

// Backoff between WatchRoutes attempts.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 2 * time.Second
)

// Client calls GatewayService with the token.
type Client struct {
	stub  inferencev1.GatewayServiceClient
	token string
	// AuthChanged is called when a table's auth_revision differs from the previous one (set it
	// before WatchRoutes): cached Authorize answers may be wrong now.
	AuthChanged func()
	revision    uint64
}

// New is a GatewayService client on conn that sends "authorization: Bearer <token>".
func New(conn grpc.ClientConnInterface, token string) *Client {
	return &Client{stub: inferencev1.NewGatewayServiceClient(conn), token: "Bearer " + token}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", c.token)
}

// Authorize asks who the caller with this authorization value is.
func (c *Client) Authorize(ctx context.Context, req *inferencev1.AuthorizeRequest) (*inferencev1.AuthorizeResponse, error) {
	return c.stub.Authorize(c.ctx(ctx), req)
}

// Resolve asks which deployment serves a model selector the route table cannot decide.
func (c *Client) Resolve(ctx context.Context, req *inferencev1.ResolveRequest) (*inferencev1.ResolveResponse, error) {
	return c.stub.Resolve(c.ctx(ctx), req)
}

// ReportUsage sends one usage report.
func (c *Client) ReportUsage(ctx context.Context, req *inferencev1.ReportUsageRequest) error {
	_, err := c.stub.ReportUsage(c.ctx(ctx), req)
	return err
}

// WatchRoutes keeps store's table up to date until ctx ends: it installs every table the
// service sends (then calls installed, when not nil), and when the stream ends it reconnects
// after a backoff (100 ms doubling to 2 s, back to 100 ms once a table arrives), keeping the
// last table meanwhile.
func (c *Client) WatchRoutes(ctx context.Context, store *routes.Store, installed func()) {
	backoff := MinBackoff
	connected := false
	var lastErr string
	for ctx.Err() == nil {
		got, err := c.watchOnce(ctx, store, installed, &connected)
		if ctx.Err() != nil {
			return
		}
		if got {
			backoff = MinBackoff
		}
		msg := "the stream ended"
		if err != nil && err != io.EOF {
			msg = status.Convert(err).Message()
			msg = status.Code(err).String() + ": " + msg
		}
		if connected || msg != lastErr {
			log.Printf("route table: WatchRoutes %s; keeping the last table (%d routes) and reconnecting",
				msg, store.Load().Len())
		}
		connected, lastErr = false, msg
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > MaxBackoff {
			backoff = MaxBackoff
		}
	}
}

// watchOnce runs one WatchRoutes stream; got says whether a table arrived.
func (c *Client) watchOnce(ctx context.Context, store *routes.Store, installed func(), connected *bool) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.stub.WatchRoutes(c.ctx(ctx), &inferencev1.WatchRoutesRequest{})
	if err != nil {
		return false, err
	}
	lastGeneration := uint64(0)
	for {
		resp, err := stream.Recv()
		if err != nil {
			return got, err
		}
		if r := resp.GetAuthRevision(); r != c.revision {
			c.revision = r
			if c.AuthChanged != nil {
				c.AuthChanged()
			}
		}
		t := store.Install(resp.GetGeneration(), resp.GetRoutes())
		if installed != nil {
			installed()
		}
		if !*connected {
			log.Printf("route table: connected to WatchRoutes")
		}
		*connected, got = true, true
		if t.Generation != lastGeneration {
			log.Printf("route table: generation %d, %d routes", t.Generation, t.Len())
			lastGeneration = t.Generation
		}
	}
}
