package predict

import (
	"context"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/beamops/beamops/services/inference/gateway/internal/auth"
	"github.com/beamops/beamops/services/inference/gateway/internal/rawcodec"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/wire"
)

// predictStream answers each request with one response (request_id and a google.rpc.Status),
// in completion order; at most StreamInFlight requests are in flight; the stream ends once every
// request is answered after the client closed its side, or at once with the refusal when the
// caller's token is revoked or expires meanwhile.
func (g *Gateway) predictStream(ss grpc.ServerStream) error {
	ctx := ss.Context()
	rid := requestID(ctx)
	ss.SetTrailer(metadata.Pairs(rpcstatus.RequestIDKey, rid))
	authorization := lastValue(ctx, "authorization")
	if e := g.Auth.Check(ctx, authorization, "PredictStream"); e != nil {
		return e.Err(rid)
	}
	guard := func(ctx context.Context) *rpcstatus.Error {
		return g.Auth.Guard(ctx, func() *rpcstatus.Error { return g.Auth.Check(ctx, authorization, "PredictStream") })
	}
	s := &stream{g: g, ss: ss, authorization: authorization, slots: make(chan struct{}, StreamInFlight),
		inflight: map[string]struct{}{}}
	return auth.Guarded(ctx, guard, rid, func(ctx context.Context) error {
		s.ctx, s.cancel = context.WithCancel(ctx)
		defer s.cancel()
		return s.run()
	}, s.stopSending)
}

// stopSending: the handler returns now (the caller was refused); nothing more is sent.
func (s *stream) stopSending() {
	s.sendMu.Lock()
	s.closed = true
	s.sendMu.Unlock()
}

type stream struct {
	g             *Gateway
	ss            grpc.ServerStream
	authorization string
	ctx           context.Context
	cancel        context.CancelFunc
	slots         chan struct{} // one per request in flight
	wg            sync.WaitGroup

	sendMu sync.Mutex
	closed bool // the handler has returned (or is returning): send nothing more

	inMu     sync.Mutex
	inflight map[string]struct{}
}

func (s *stream) run() error {
	for {
		select {
		case s.slots <- struct{}{}: // flow control: stop reading while too many are in flight
		case <-s.ctx.Done():
			return s.abort(status.FromContextError(s.ctx.Err()).Err())
		}
		var fr rawcodec.Frame
		if err := s.ss.RecvMsg(&fr); err != nil {
			<-s.slots
			if err == io.EOF {
				break
			}
			return s.abort(err)
		}
		buf := fr.Bytes()
		fr.Free()
		req := new(wire.Request)
		if wire.ParseStream(buf, req) != nil {
			return s.abort(status.Error(codes.InvalidArgument, "a request on the stream is not a valid PredictStreamRequest message"))
		}
		id := req.RequestID
		if id == "" {
			<-s.slots
			e := rpcstatus.InvalidField("request_id is required", "request_id")
			s.send(wire.StreamStatus(id, e.Proto("-")))
			continue
		}
		s.inMu.Lock()
		_, dup := s.inflight[id]
		if !dup {
			s.inflight[id] = struct{}{}
		}
		s.inMu.Unlock()
		if dup {
			<-s.slots
			e := rpcstatus.InvalidField(fmt.Sprintf("request_id %q is already in flight", id), "request_id")
			s.send(wire.StreamStatus(id, e.Proto(id)))
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			answer := s.g.answer(s.ctx, s.authorization, req)
			if limit := s.g.MaxSendBytes; limit > 0 && answer.Len() > limit {
				answer = wire.StreamStatus(id, tooLarge(answer.Len(), limit).Proto(id))
			}
			s.finish(id)
			s.send(answer)
		}()
	}
	// The client closed its side: answer everything pending, then end.
	s.wg.Wait()
	s.sendMu.Lock()
	s.closed = true
	s.sendMu.Unlock()
	return nil
}

func (g *Gateway) answer(ctx context.Context, authorization string, req *wire.Request) mem.BufferSlice {
	id := req.RequestID
	route, e := g.routeFor(ctx, authorization, req)
	if e != nil {
		return wire.StreamStatus(id, e.Proto(id))
	}
	served, outputs, e := g.serve(ctx, route, req, "PredictStream", id)
	if e != nil {
		return wire.StreamStatus(id, e.Proto(id))
	}
	return wire.StreamOK(id, outputs, &served.Tail)
}

// finish takes a request out of the in-flight set and frees its slot.
func (s *stream) finish(id string) {
	s.inMu.Lock()
	delete(s.inflight, id)
	s.inMu.Unlock()
	<-s.slots
}

// send writes one response (responses of concurrent requests are written one at a time).
func (s *stream) send(data mem.BufferSlice) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.closed {
		return
	}
	if err := s.ss.SendMsg(&rawcodec.Frame{Data: data}); err != nil {
		s.closed = true
		s.cancel()
	}
}

// abort ends the stream with err; requests still running answer nobody.
func (s *stream) abort(err error) error {
	s.sendMu.Lock()
	s.closed = true
	s.sendMu.Unlock()
	s.cancel()
	return err
}
