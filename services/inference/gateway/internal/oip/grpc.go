package oip

import (
	"context"
	"crypto/tls"
	"io"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/auth"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// Service is the protocol's gRPC service name.
const Service = "inference.GRPCInferenceService"

// StreamInFlight is the most requests of one ModelStreamInfer in flight.
const StreamInFlight = 64

// Handle serves method when it is one of the protocol's (handled false otherwise). It is called
// from the gateway's gRPC server, whose codec passes proto messages through.
func (f *Front) Handle(method string, ss grpc.ServerStream) (handled bool, err error) {
	name, ok := strings.CutPrefix(method, "/"+Service+"/")
	if !ok {
		return false, nil
	}
	switch name {
	case "ServerLive":
		return true, unary(ss, nil, &tritonpb.ServerLiveRequest{}, f.ServerLive)
	case "ServerReady":
		return true, unary(ss, nil, &tritonpb.ServerReadyRequest{}, f.ServerReady)
	case "ServerMetadata":
		return true, unary(ss, f.caller("ServerMetadata", true), &tritonpb.ServerMetadataRequest{}, f.ServerMetadata)
	case "ModelReady":
		return true, unary(ss, f.caller("ModelReady", true), &tritonpb.ModelReadyRequest{}, f.ModelReady)
	case "ModelMetadata":
		return true, unary(ss, f.caller("ModelMetadata", true), &tritonpb.ModelMetadataRequest{}, f.ModelMetadata)
	case "ModelConfig":
		return true, unary(ss, f.caller("ModelConfig", true), &tritonpb.ModelConfigRequest{}, f.ModelConfig)
	case "ModelStatistics":
		return true, unary(ss, f.caller("ModelStatistics", true), &tritonpb.ModelStatisticsRequest{}, f.ModelStatistics)
	case "RepositoryIndex":
		return true, unary(ss, f.caller("RepositoryIndex", true), &tritonpb.RepositoryIndexRequest{}, f.RepositoryIndex)
	case "RepositoryModelLoad":
		return true, unary(ss, f.repositoryCaller("RepositoryModelLoad"), &tritonpb.RepositoryModelLoadRequest{}, f.RepositoryModelLoad)
	case "RepositoryModelUnload":
		return true, unary(ss, f.repositoryCaller("RepositoryModelUnload"), &tritonpb.RepositoryModelUnloadRequest{}, f.RepositoryModelUnload)
	case "ModelInfer":
		return true, unary(ss, f.caller("ModelInfer", false), &tritonpb.ModelInferRequest{}, f.ModelInfer)
	case "ModelStreamInfer":
		return true, f.streamInfer(ss)
	}
	c := callOf(ss.Context())
	return true, unimplemented(name).Err(c.RequestID)
}

// caller checks the caller of method (see admit).
func (f *Front) caller(method string, setup bool) func(context.Context, Call) *rpcstatus.Error {
	return func(ctx context.Context, c Call) *rpcstatus.Error { return f.admit(ctx, c, method, setup) }
}

func callOf(ctx context.Context) Call {
	md, _ := metadata.FromIncomingContext(ctx)
	c := Call{Authorization: rpcstatus.Last(md, "authorization"), RequestID: rpcstatus.RequestID(md)}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			c.ClientSubject = VerifiedSubject(info.State)
		}
	}
	return c
}

// VerifiedSubject is the subject (RFC 2253, as OpenSSL prints it) of the client certificate a
// TLS handshake verified against the client CA ("" when none was).
func VerifiedSubject(state tls.ConnectionState) string {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return ""
	}
	return Subject(state.VerifiedChains[0][0])
}

// unary checks the caller with admit (nil: no credentials needed) before it reads the request,
// so that an unknown caller costs no memory; then it reads one request, answers it with h (which
// checks again, from the cache) and sets the request id trailer.
func unary[Req, Resp proto.Message](ss grpc.ServerStream, admit func(context.Context, Call) *rpcstatus.Error,
	req Req, h func(context.Context, Call, Req) (Resp, *rpcstatus.Error)) error {
	c := callOf(ss.Context())
	ss.SetTrailer(metadata.Pairs(rpcstatus.RequestIDKey, c.RequestID))
	if admit != nil {
		if e := admit(ss.Context(), c); e != nil {
			return e.Err(c.RequestID)
		}
	}
	if err := ss.RecvMsg(req); err != nil {
		return err
	}
	resp, e := h(ss.Context(), c, req)
	if e != nil {
		return e.Err(c.RequestID)
	}
	return ss.SendMsg(resp)
}

// streamInfer is ModelStreamInfer: every request is answered on the stream (an error in
// error_message), in completion order, at most StreamInFlight at once; the stream ends at once
// with the refusal when the caller's token is revoked or expires (or its certificate is
// unmapped) meanwhile.
func (f *Front) streamInfer(ss grpc.ServerStream) error {
	c := callOf(ss.Context())
	ss.SetTrailer(metadata.Pairs(rpcstatus.RequestIDKey, c.RequestID))
	if e := f.admit(ss.Context(), c, "ModelStreamInfer", false); e != nil {
		return e.Err(c.RequestID)
	}
	var sendMu sync.Mutex
	var sendErr error
	guard := func(ctx context.Context) *rpcstatus.Error {
		return f.Auth.Guard(ctx, func() *rpcstatus.Error { return f.admit(ctx, c, "ModelStreamInfer", false) })
	}
	stop := func() {
		sendMu.Lock()
		sendErr = context.Canceled
		sendMu.Unlock()
	}
	return auth.Guarded(ss.Context(), guard, c.RequestID, func(ctx context.Context) error {
		slots := make(chan struct{}, StreamInFlight)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			req := &tritonpb.ModelInferRequest{}
			if err := ss.RecvMsg(req); err != nil {
				wg.Wait()
				if err == io.EOF {
					sendMu.Lock()
					defer sendMu.Unlock()
					return sendErr
				}
				return err
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				resp, e := f.ModelInfer(ctx, c, req)
				out := &tritonpb.ModelStreamInferResponse{InferResponse: resp}
				if e != nil {
					out = &tritonpb.ModelStreamInferResponse{ErrorMessage: e.Message,
						InferResponse: &tritonpb.ModelInferResponse{ModelName: req.GetModelName(), Id: req.GetId()}}
				}
				sendMu.Lock()
				defer sendMu.Unlock()
				if sendErr == nil {
					sendErr = ss.SendMsg(out)
				}
			}()
		}
	}, stop)
}
