package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// ---- a fake Triton: models answer probabilities = [x0, 1-x0] (FP32, [rows, 2]) and
// label = row index (INT64, [rows, 1]) for input x (FP32, [rows, 4]). -------------------------

type fakeTriton struct {
	tritonpb.UnimplementedGRPCInferenceServiceServer
	mu     sync.Mutex
	loaded map[string]bool
	calls  map[string]int
	// notLoadedCode is the code of the "unknown model" error (Triton's varies by situation).
	notLoadedCode codes.Code
}

func (f *fakeTriton) ModelInfer(_ context.Context, req *tritonpb.ModelInferRequest) (*tritonpb.ModelInferResponse, error) {
	f.mu.Lock()
	loaded := f.loaded[req.ModelName]
	f.calls[req.ModelName]++
	code := f.notLoadedCode
	f.mu.Unlock()
	if !loaded {
		return nil, status.Errorf(code, "Request for unknown model: '%s' is not found", req.ModelName)
	}
	if len(req.Inputs) != 1 || req.Inputs[0].Name != "x" || req.Inputs[0].Datatype != "FP32" || len(req.RawInputContents) != 1 {
		return nil, status.Error(codes.InvalidArgument, "unexpected inputs for /models/fake/1/model.onnx")
	}
	rows := int(req.Inputs[0].Shape[0])
	x := req.RawInputContents[0]
	probs := make([]byte, rows*8)
	labels := make([]byte, rows*8)
	for r := 0; r < rows; r++ {
		v := math.Float32frombits(binary.LittleEndian.Uint32(x[r*16:]))
		binary.LittleEndian.PutUint32(probs[r*8:], math.Float32bits(v))
		binary.LittleEndian.PutUint32(probs[r*8+4:], math.Float32bits(1-v))
		binary.LittleEndian.PutUint64(labels[r*8:], uint64(r))
	}
	resp := &tritonpb.ModelInferResponse{ModelName: req.ModelName, ModelVersion: "1"}
	for _, out := range req.Outputs {
		switch out.Name {
		case "probabilities":
			resp.Outputs = append(resp.Outputs, &tritonpb.ModelInferResponse_InferOutputTensor{Name: "probabilities", Datatype: "FP32", Shape: []int64{int64(rows), 2}})
			resp.RawOutputContents = append(resp.RawOutputContents, probs)
		case "label":
			resp.Outputs = append(resp.Outputs, &tritonpb.ModelInferResponse_InferOutputTensor{Name: "label", Datatype: "INT64", Shape: []int64{int64(rows), 1}})
			resp.RawOutputContents = append(resp.RawOutputContents, labels)
		}
	}
	return resp, nil
}

func (f *fakeTriton) set(model string, loaded bool) {
	f.mu.Lock()
	f.loaded[model] = loaded
	f.mu.Unlock()
}

func (f *fakeTriton) callsOf(model string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[model]
}

// ---- a fake Python inference service, the control plane: GatewayService streams the tables
// pushed on tables, answers Authorize from readerTokens and Resolve with resolve;
// InferenceService serves GetDeployment and WatchAlerts (forwarded by the gateway). Its Predict
// and PredictStream only count calls: the gateway answers every inference request itself. ----

type fakeService struct {
	inferencev1.UnimplementedInferenceServiceServer
	inferencev1.UnimplementedGatewayServiceServer
	token   string
	tables  chan *inferencev1.WatchRoutesResponse
	mu      sync.Mutex
	reports []*inferencev1.ReportUsageRequest
	authN   int
	lastMD  metadata.MD // of the last GetDeployment
	// resolve answers Resolve (a deployment name or an error); nil: NOT_FOUND for everything.
	resolve   func(*inferencev1.ResolveRequest) (string, error)
	resolved  []*inferencev1.ResolveRequest // every Resolve request, in order
	inference int                           // Predict and PredictStream calls that reached the service
}

var readerTokens = map[string]bool{"Bearer reader": true}

func (f *fakeService) gatewayCaller(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) != 1 || v[0] != "Bearer "+f.token {
		return status.Error(codes.Unauthenticated, "bad gateway token")
	}
	return nil
}

func (f *fakeService) WatchRoutes(_ *inferencev1.WatchRoutesRequest, s grpc.ServerStreamingServer[inferencev1.WatchRoutesResponse]) error {
	if err := f.gatewayCaller(s.Context()); err != nil {
		return err
	}
	for {
		select {
		case t := <-f.tables:
			if t == nil {
				return status.Error(codes.Unavailable, "shutting down")
			}
			if err := s.Send(t); err != nil {
				return err
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

func (f *fakeService) Authorize(ctx context.Context, req *inferencev1.AuthorizeRequest) (*inferencev1.AuthorizeResponse, error) {
	if err := f.gatewayCaller(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.authN++
	f.mu.Unlock()
	if readerTokens[req.Authorization] {
		return &inferencev1.AuthorizeResponse{Principal: "reader-user", Role: commonv1.Role_ROLE_READER, ValidForMs: 60000}, nil
	}
	return nil, (&rpcstatus.Error{Code: codes.Unauthenticated, Reason: "UNAUTHENTICATED",
		Message: "the token is unknown or has been revoked"}).Err("python-request")
}

// resolveRequestID is the request id in the details of the fake's Resolve refusals: the
// gateway's answer must carry its caller's request id instead.
const resolveRequestID = "resolve-request"

func (f *fakeService) Resolve(ctx context.Context, req *inferencev1.ResolveRequest) (*inferencev1.ResolveResponse, error) {
	if err := f.gatewayCaller(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.resolved = append(f.resolved, proto.Clone(req).(*inferencev1.ResolveRequest))
	resolve := f.resolve
	f.mu.Unlock()
	if resolve == nil {
		if req.Deployment != "" {
			return nil, rpcstatus.New(codes.NotFound, fmt.Sprintf("no deployment named %q", req.Deployment)).Err(resolveRequestID)
		}
		return nil, rpcstatus.New(codes.NotFound, fmt.Sprintf("no deployment of model %q answers", req.Model)).Err(resolveRequestID)
	}
	name, err := resolve(req)
	if err != nil {
		return nil, err
	}
	return &inferencev1.ResolveResponse{Deployment: name}, nil
}

// resolution is what the fake's Resolve answers for one selector: a deployment, or a refusal.
type resolution struct {
	deployment string
	code       codes.Code // a refusal when not OK
	message    string
}

// selectorKey names a ResolveRequest's selector: "deployment=d", "model=m", "model=m version=v",
// "model=m alias=a", "model=m tag=t run=r" (each field that is set, in that order).
func selectorKey(req *inferencev1.ResolveRequest) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("deployment", req.Deployment)
	add("model", req.Model)
	add("version", req.Version)
	add("alias", req.Alias)
	add("tag", req.GlobalTag)
	if req.Run != nil {
		parts = append(parts, fmt.Sprintf("run=%d", *req.Run))
	}
	return strings.Join(parts, " ")
}

// resolveBy makes Resolve answer from answers, by selectorKey; any other selector is INTERNAL
// (a test failure: the gateway asked what it should not have).
func (f *fakeService) resolveBy(answers map[string]resolution) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resolve = func(req *inferencev1.ResolveRequest) (string, error) {
		a, ok := answers[selectorKey(req)]
		if !ok {
			return "", status.Errorf(codes.Internal, "the fake service was not told how to resolve %q", selectorKey(req))
		}
		if a.code != codes.OK {
			return "", rpcstatus.New(a.code, a.message).Err(resolveRequestID)
		}
		return a.deployment, nil
	}
}

// resolveRequests is every Resolve request so far.
func (f *fakeService) resolveRequests() []*inferencev1.ResolveRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*inferencev1.ResolveRequest(nil), f.resolved...)
}

func (f *fakeService) inferenceCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inference
}

func (f *fakeService) ReportUsage(ctx context.Context, req *inferencev1.ReportUsageRequest) (*inferencev1.ReportUsageResponse, error) {
	if err := f.gatewayCaller(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.reports = append(f.reports, req)
	f.mu.Unlock()
	return &inferencev1.ReportUsageResponse{}, nil
}

// Predict must never be called: it answers something no gateway answer looks like.
func (f *fakeService) Predict(context.Context, *inferencev1.PredictRequest) (*inferencev1.PredictResponse, error) {
	f.mu.Lock()
	f.inference++
	f.mu.Unlock()
	return &inferencev1.PredictResponse{Deployment: "forwarded"}, nil
}

// PredictStream must never be called: it answers every request OK as "forwarded".
func (f *fakeService) PredictStream(s grpc.BidiStreamingServer[inferencev1.PredictStreamRequest, inferencev1.PredictStreamResponse]) error {
	f.mu.Lock()
	f.inference++
	f.mu.Unlock()
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&inferencev1.PredictStreamResponse{RequestId: req.RequestId, Status: &spb.Status{},
			Deployment: "forwarded"}); err != nil {
			return err
		}
	}
}

func (f *fakeService) GetDeployment(ctx context.Context, req *inferencev1.GetDeploymentRequest) (*inferencev1.GetDeploymentResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "h"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t", "x-bin-bin", "\x00\x01"))
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.lastMD = md
	f.mu.Unlock()
	if req.Name == "missing" {
		return nil, rpcstatus.New(codes.NotFound, `no deployment named "missing"`).Err("py-id")
	}
	return &inferencev1.GetDeploymentResponse{Deployment: &inferencev1.Deployment{Name: req.Name + "|" + first(md.Get("x-custom"))}}, nil
}

func (f *fakeService) WatchAlerts(req *inferencev1.WatchAlertsRequest, s grpc.ServerStreamingServer[inferencev1.WatchAlertsResponse]) error {
	for i := 0; i < 3; i++ {
		if err := s.Send(&inferencev1.WatchAlertsResponse{Alert: &inferencev1.Alert{Deployment: req.Deployment}}); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, "the service is shutting down")
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func serve(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}
