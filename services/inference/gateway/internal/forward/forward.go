// Package forward relays any gRPC call, unchanged, to the Python inference service: request
// metadata, messages in both directions as raw bytes (never decoded), response headers,
// trailers and status (with its details) as they come back.
package forward

import (
	"context"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/beamops/beamops/services/inference/gateway/internal/rawcodec"
)

var streamDesc = grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// Forwarder relays calls over one connection (made with the raw codec as its default, see
// rawcodec.Codec).
type Forwarder struct {
	Conn *grpc.ClientConn
}

// outgoing is the caller's metadata for the upstream call: everything but HTTP/2 pseudo
// headers and the headers gRPC sets itself (content-type, user-agent, te, ...).
func outgoing(ctx context.Context) context.Context {
	in, _ := metadata.FromIncomingContext(ctx)
	out := make(metadata.MD, len(in))
	for k, v := range in {
		if skipHeader(k) {
			continue
		}
		out[k] = v
	}
	return metadata.NewOutgoingContext(ctx, out)
}

func skipHeader(k string) bool {
	if strings.HasPrefix(k, ":") {
		return true
	}
	switch k {
	case "content-type", "user-agent", "te", "host", "connection", "grpc-accept-encoding",
		"grpc-encoding", "grpc-timeout", "grpc-status", "grpc-message", "grpc-status-details-bin":
		return true
	}
	return false
}

// Forward relays the call on ss to the service, with the caller's metadata, deadline and
// cancellation.
func (f *Forwarder) Forward(ss grpc.ServerStream, method string) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	cs, err := f.Conn.NewStream(outgoing(ctx), &streamDesc, method)
	if err != nil {
		return err
	}
	// Caller -> service. Ends with CloseSend when the caller closes its side; a failure to send
	// means the upstream call is over, and its status comes from the receiving side below.
	go func() {
		for {
			var fr rawcodec.Frame
			if err := ss.RecvMsg(&fr); err != nil {
				if err == io.EOF {
					_ = cs.CloseSend()
				} else {
					cancel() // the caller went away: end the upstream call
				}
				return
			}
			if cs.SendMsg(&fr) != nil {
				fr.Free()
				return
			}
		}
	}()
	// Service -> caller.
	if hdr, _ := cs.Header(); len(hdr) > 0 {
		if err := ss.SendHeader(clean(hdr)); err != nil {
			return err
		}
	}
	for {
		var fr rawcodec.Frame
		err := cs.RecvMsg(&fr)
		if err != nil {
			if t := cs.Trailer(); len(t) > 0 {
				ss.SetTrailer(clean(t))
			}
			if err == io.EOF {
				return nil
			}
			return err // the service's status, details included
		}
		if err := ss.SendMsg(&fr); err != nil {
			fr.Free()
			return err
		}
	}
}

func clean(md metadata.MD) metadata.MD {
	out := make(metadata.MD, len(md))
	for k, v := range md {
		if skipHeader(k) && k != "grpc-status-details-bin" {
			continue
		}
		out[k] = v
	}
	return out
}
