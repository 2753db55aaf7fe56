package predict

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/beamops/beamops/services/inference/gateway/internal/pyrepr"
	"github.com/beamops/beamops/services/inference/gateway/internal/rawcodec"
	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/wire"
)

// predictStream is servicer.py's PredictStream. Each request gets one response (request_id and
// a google.rpc.Status), in completion order; at most StreamInFlight requests are in flight;
// the stream ends once every request is answered after the client closed its side. Requests
// without a route go to the service on one PredictStream of its own, opened on first need,
// whose responses are merged into this one. With an empty route table the whole stream is
// forwarded as it is.
func (g *Gateway) predictStream(ss grpc.ServerStream) error {
	if g.Routes.Load().Len() == 0 {
		return g.Forward.Forward(ss, StreamMethod, nil)
	}
	ctx := ss.Context()
	rid := requestID(ctx)
	ss.SetTrailer(metadata.Pairs(rpcstatus.RequestIDKey, rid))
	if e := g.Auth.Check(ctx, lastValue(ctx, "authorization"), "PredictStream"); e != nil {
		return e.Err(rid)
	}
	s := &stream{g: g, ss: ss, slots: make(chan struct{}, StreamInFlight), inflight: map[string]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(ctx)
	defer s.cancel()
	return s.run()
}

type stream struct {
	g      *Gateway
	ss     grpc.ServerStream
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{} // one per request in flight
	wg     sync.WaitGroup

	sendMu sync.Mutex
	closed bool // the handler has returned (or is returning): send nothing more

	inMu     sync.Mutex
	inflight map[string]struct{}

	subMu sync.Mutex
	sub   *substream // the service's PredictStream for requests without a route; nil until needed
}

type substream struct {
	cs      grpc.ClientStream
	pending map[string]struct{} // request ids sent and not answered
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
			return s.abort(status.Error(codes.Internal, "Exception deserializing request!"))
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
		if dup { // answered with the code and message alone, as the service does
			<-s.slots
			e := rpcstatus.InvalidField("request_id "+pyrepr.Str(id)+" is already in flight", "request_id")
			s.send(wire.StreamStatus(id, &spb.Status{Code: int32(e.Code), Message: e.Message}))
			continue
		}
		route := s.g.routeOf(req)
		if route == nil {
			s.forward(id, buf)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			answer := s.g.answer(s.ctx, route, req)
			if limit := s.g.MaxSendBytes; limit > 0 && answer.Len() > limit {
				answer = wire.StreamStatus(id, tooLarge(answer.Len(), limit).Proto(id))
			}
			s.finish(id)
			s.send(answer)
		}()
	}
	// The client closed its side: answer everything pending, then end.
	s.subMu.Lock()
	sub := s.sub
	s.subMu.Unlock()
	if sub != nil {
		_ = sub.cs.CloseSend()
	}
	s.wg.Wait()
	s.sendMu.Lock()
	s.closed = true
	s.sendMu.Unlock()
	return nil
}

func (g *Gateway) answer(ctx context.Context, route *routes.Route, req *wire.Request) mem.BufferSlice {
	id := req.RequestID
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

// forward sends a request without a route to the service's PredictStream (opened on first
// need, and again after it failed). s.sub is set only while its stream has not failed.
func (s *stream) forward(id string, buf []byte) {
	s.subMu.Lock()
	sub := s.sub
	if sub != nil {
		sub.pending[id] = struct{}{}
	}
	s.subMu.Unlock()
	if sub == nil {
		cs, err := s.g.Forward.Open(s.ctx, StreamMethod)
		if err != nil {
			s.finish(id)
			s.send(wire.StreamStatus(id, status.Convert(err).Proto()))
			return
		}
		sub = &substream{cs: cs, pending: map[string]struct{}{id: {}}}
		s.subMu.Lock()
		s.sub = sub
		s.subMu.Unlock()
		s.wg.Add(1)
		go s.receive(sub)
	}
	_ = sub.cs.SendMsg(rawcodec.FromBytes(buf)) // on failure, receive answers it
}

// receive merges the service's responses into the stream; when the service's stream fails,
// the requests it had not answered get its status.
func (s *stream) receive(sub *substream) {
	defer s.wg.Done()
	for {
		var fr rawcodec.Frame
		err := sub.cs.RecvMsg(&fr)
		if err != nil {
			s.subMu.Lock()
			pending := sub.pending
			sub.pending = nil
			if s.sub == sub {
				s.sub = nil
			}
			s.subMu.Unlock()
			st := status.Convert(err).Proto()
			if err == io.EOF {
				st = rpcstatus.New(codes.Unavailable, "the inference service ended the stream before answering").Proto("-")
			}
			for id := range pending {
				s.finish(id)
				s.send(wire.StreamStatus(id, st))
			}
			return
		}
		buf := fr.Bytes()
		fr.Free()
		id := wire.RequestIDOf(buf)
		s.subMu.Lock()
		_, mine := sub.pending[id]
		delete(sub.pending, id)
		s.subMu.Unlock()
		if mine {
			s.finish(id)
		}
		s.send(rawcodec.FromBytes(buf).Data)
	}
}
