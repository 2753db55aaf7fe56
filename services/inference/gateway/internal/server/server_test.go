package server

import (
	"context"
	"encoding/binary"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/rawcodec"
)

type env struct {
	triton  *fakeTriton
	service *fakeService
	gw      *Server
	conn    *grpc.ClientConn // to the gateway
	client  inferencev1.InferenceServiceClient
}

func start(t *testing.T, options ...func(*Config)) *env {
	t.Helper()
	e := &env{
		triton:  &fakeTriton{loaded: map[string]bool{"jets-1": true}, calls: map[string]int{}, notLoadedCode: codes.NotFound},
		service: &fakeService{token: "gw-token", tables: make(chan *inferencev1.WatchRoutesResponse, 10)},
	}
	tritonAddr := serve(t, func(s *grpc.Server) { tritonpb.RegisterGRPCInferenceServiceServer(s, e.triton) })
	serviceAddr := serve(t, func(s *grpc.Server) {
		inferencev1.RegisterInferenceServiceServer(s, e.service)
		inferencev1.RegisterGatewayServiceServer(s, e.service)
		hs := health.NewServer()
		hs.SetServingStatus("beamops.inference.v1.InferenceService", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(s, hs)
	})
	cfg := Config{Listen: "127.0.0.1:0", Service: serviceAddr, Triton: tritonAddr, Token: "gw-token",
		MaxMessageBytes: 4 << 20, InferTimeout: 5 * time.Second, ReportInterval: 50 * time.Millisecond,
		DriftSamplesPerS: 100, TritonConnections: 2, RetryWait: 300 * time.Millisecond}
	for _, o := range options {
		o(&cfg)
	}
	gw, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Stop(time.Second) })
	e.gw = gw
	conn, err := grpc.NewClient(gw.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.conn = conn
	e.client = inferencev1.NewInferenceServiceClient(conn)
	// The gateway answers every Predict and PredictStream itself, whatever the test did.
	t.Cleanup(func() {
		if n := e.service.inferenceCalls(); n != 0 {
			t.Errorf("%d Predict or PredictStream calls reached the service", n)
		}
	})
	return e
}

func jetsRoute(triton, version string) *inferencev1.GatewayRoute {
	return &inferencev1.GatewayRoute{
		Deployment: "jets", Model: "jets-model", ParametersVersion: version, TritonModel: triton,
		Inputs: []*commonv1.TensorSpec{{Name: "x", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 4}}},
		Outputs: []*commonv1.TensorSpec{
			{Name: "probabilities", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 2}},
			{Name: "label", Dtype: commonv1.DataType_DATA_TYPE_INT64, Shape: []int64{-1}},
		},
		MaxBatchSize: 64, Drift: true,
	}
}

// pushTable sends a table and waits until the gateway has it.
func (e *env) pushTable(t *testing.T, gen uint64, routes ...*inferencev1.GatewayRoute) {
	t.Helper()
	before := e.gw.Routes.Load().Seq
	e.service.tables <- &inferencev1.WatchRoutesResponse{Generation: gen, Routes: routes}
	deadline := time.Now().Add(5 * time.Second)
	for e.gw.Routes.Load().Seq == before {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not install the table")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func x(rows int) *commonv1.Tensor {
	data := make([]byte, rows*16)
	for r := 0; r < rows; r++ {
		binary.LittleEndian.PutUint32(data[r*16:], math.Float32bits(float32(r)/10))
	}
	return &commonv1.Tensor{Name: "x", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{int64(rows), 4}, RawData: data}
}

func reader(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, append([]string{"authorization", "Bearer reader"}, kv...)...)
}

func details(t *testing.T, err error) (*errdetails.ErrorInfo, *errdetails.RequestInfo, *errdetails.BadRequest) {
	t.Helper()
	var info *errdetails.ErrorInfo
	var req *errdetails.RequestInfo
	var bad *errdetails.BadRequest
	for _, d := range status.Convert(err).Details() {
		switch v := d.(type) {
		case *errdetails.ErrorInfo:
			info = v
		case *errdetails.RequestInfo:
			req = v
		case *errdetails.BadRequest:
			bad = v
		}
	}
	return info, req, bad
}

// statusDetails is details of a PredictStreamResponse's status.
func statusDetails(t *testing.T, st *spb.Status) (*errdetails.ErrorInfo, *errdetails.RequestInfo, *errdetails.BadRequest) {
	t.Helper()
	return details(t, status.FromProto(st).Err())
}

// refusedAs checks that err is code with message, and details with reason and requestID.
func refusedAs(t *testing.T, err error, code codes.Code, reason, message, requestID string) {
	t.Helper()
	if status.Code(err) != code || status.Convert(err).Message() != message {
		t.Fatalf("want %v %q, got %v", code, message, err)
	}
	info, req, _ := details(t, err)
	if info == nil || info.Reason != reason || info.Domain != "beamops.dev" || req == nil || req.RequestId != requestID {
		t.Fatalf("%v: details %v %v, want reason %s and request id %q", err, info, req, reason, requestID)
	}
}

func TestWithoutRoutesOnlyOtherMethodsAreForwarded(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Predict with an empty table: the control plane's refusal is the answer (with this call's
	// request id); the service's Predict is never called.
	var trailer metadata.MD
	_, err := e.client.Predict(reader(ctx, "x-custom", "c", "x-request-id", "p-1"), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"}, Inputs: []*commonv1.Tensor{x(2)}}, grpc.Trailer(&trailer))
	refusedAs(t, err, codes.NotFound, "NOT_FOUND", `no deployment named "jets"`, "p-1")
	if first(trailer.Get("x-request-id")) != "p-1" {
		t.Fatalf("trailer %v", trailer)
	}
	_, err = e.client.Predict(reader(ctx, "x-request-id", "p-2"), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets-model",
			Selector: &inferencev1.ModelSelector_ParametersVersion{ParametersVersion: "1.0"}}},
		Inputs: []*commonv1.Tensor{x(2)}})
	refusedAs(t, err, codes.NotFound, "NOT_FOUND", `no deployment of model "jets-model" answers`, "p-2")
	resolved := e.service.resolveRequests()
	if len(resolved) != 2 ||
		!proto.Equal(resolved[0], &inferencev1.ResolveRequest{Authorization: "Bearer reader", Deployment: "jets"}) ||
		!proto.Equal(resolved[1], &inferencev1.ResolveRequest{Authorization: "Bearer reader", Model: "jets-model", Version: "1.0"}) {
		t.Fatalf("Resolve requests %v", resolved)
	}
	if n := e.service.inferenceCalls(); n != 0 {
		t.Fatalf("Predict forwarded %d times", n)
	}

	// Other methods are forwarded: metadata, headers, trailers, status and details as the
	// service sent them.
	var header metadata.MD
	_, err = e.client.GetDeployment(reader(ctx, "x-custom", "c"), &inferencev1.GetDeploymentRequest{Name: "missing"},
		grpc.Header(&header), grpc.Trailer(&trailer))
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != `no deployment named "missing"` {
		t.Fatal(err)
	}
	if info, req, _ := details(t, err); info == nil || info.Reason != "NOT_FOUND" || req == nil || req.RequestId != "py-id" {
		t.Fatalf("details lost: %v %v", info, req)
	}
	if first(header.Get("x-header")) != "h" || first(trailer.Get("x-trailer")) != "t" || first(trailer.Get("x-bin-bin")) != "\x00\x01" {
		t.Fatalf("header %v trailer %v", header, trailer)
	}
	e.service.mu.Lock()
	md := e.service.lastMD
	e.service.mu.Unlock()
	if first(md.Get("x-custom")) != "c" || first(md.Get("authorization")) != "Bearer reader" {
		t.Fatalf("metadata not forwarded: %v", md)
	}
	got, err := e.client.GetDeployment(metadata.AppendToOutgoingContext(ctx, "x-custom", "v"), &inferencev1.GetDeploymentRequest{Name: "d"})
	if err != nil || got.Deployment.Name != "d|v" {
		t.Fatal(got, err)
	}

	// A server stream, and its final status.
	alerts, err := e.client.WatchAlerts(ctx, &inferencev1.WatchAlertsRequest{Deployment: "jets"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		a, err := alerts.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable || n != 3 {
				t.Fatalf("after %d alerts: %v", n, err)
			}
			break
		}
		if a.Alert.Deployment != "jets" {
			t.Fatal(a)
		}
		n++
	}

	// Health.
	h, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "beamops.inference.v1.InferenceService"})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatal(h, err)
	}
	_, err = healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "nothing"})
	if status.Code(err) != codes.NotFound {
		t.Fatal(err)
	}

	// PredictStream with an empty table: answered here, each request with its refusal.
	stream, err := e.client.PredictStream(reader(ctx))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := stream.Send(&inferencev1.PredictStreamRequest{RequestId: string(rune('a' + i)),
			Route: &inferencev1.PredictStreamRequest_Deployment{Deployment: "jets"}}); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	answered := map[string]bool{}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		info, req, _ := statusDetails(t, r.Status)
		if r.Status.GetCode() != int32(codes.NotFound) || r.Status.GetMessage() != `no deployment named "jets"` ||
			r.Deployment != "" || info == nil || info.Reason != "NOT_FOUND" || req == nil || req.RequestId != r.RequestId {
			t.Fatal(r)
		}
		answered[r.RequestId] = true
	}
	if len(answered) != 5 {
		t.Fatal(answered)
	}
	if n := len(e.service.resolveRequests()); n != 2+5 {
		t.Fatalf("%d Resolve calls", n)
	}
	if n := e.service.inferenceCalls(); n != 0 {
		t.Fatalf("PredictStream forwarded (%d inference calls)", n)
	}
}

func TestNativePredict(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))

	var trailer metadata.MD
	resp, err := e.client.Predict(reader(ctx, "x-request-id", "my-id.1"), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"}, Inputs: []*commonv1.Tensor{x(3)}}, grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Deployment != "jets" || resp.Parameters.GetModel() != "jets-model" || resp.Parameters.GetVersion() != "1.0" {
		t.Fatalf("%v", resp)
	}
	if len(resp.Outputs) != 2 || resp.Outputs[0].Name != "probabilities" || resp.Outputs[1].Name != "label" {
		t.Fatalf("%v", resp.Outputs)
	}
	if s := resp.Outputs[1].Shape; len(s) != 1 || s[0] != 3 {
		t.Fatalf("label shape %v: a rank-1 output gets its signature rank back", s)
	}
	if p := math.Float32frombits(binary.LittleEndian.Uint32(resp.Outputs[0].RawData[8:])); p != 0.1 {
		t.Fatalf("probability %v", p)
	}
	if first(trailer.Get("x-request-id")) != "my-id.1" {
		t.Fatalf("trailer %v", trailer)
	}
	if e.triton.callsOf("jets-1") != 1 {
		t.Fatal("Triton not called once")
	}

	// One output by name.
	resp, err = e.client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
		Inputs: []*commonv1.Tensor{x(1)}, OutputNames: []string{"label"}}, grpc.Trailer(&trailer))
	if err != nil || len(resp.Outputs) != 1 || resp.Outputs[0].Name != "label" {
		t.Fatal(resp, err)
	}
	if id := first(trailer.Get("x-request-id")); len(id) != 32 {
		t.Fatalf("generated request id %q", id)
	}

	// Bad input: refused before Triton, with beamops error details (reason, tensor, request id,
	// field).
	bad := x(2)
	bad.Dtype = commonv1.DataType_DATA_TYPE_FLOAT64
	_, err = e.client.Predict(reader(ctx, "x-request-id", "rid"), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"}, Inputs: []*commonv1.Tensor{bad}}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != `input "x": dtype FLOAT64, the model expects FLOAT32` {
		t.Fatal(err)
	}
	info, req, br := details(t, err)
	if info == nil || info.Reason != "INVALID_ARGUMENT" || info.Domain != "beamops.dev" || info.Metadata["tensor"] != "x" ||
		req == nil || req.RequestId != "rid" || br == nil || br.FieldViolations[0].Field != "inputs[0].dtype" {
		t.Fatalf("%v %v %v", info, req, br)
	}
	if first(trailer.Get("x-request-id")) != "rid" {
		t.Fatal("no x-request-id trailer on failure")
	}
	if e.triton.callsOf("jets-1") != 2 {
		t.Fatal("a refused request reached Triton")
	}
	_, err = e.client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
		Inputs: []*commonv1.Tensor{x(65)}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "max_batch_size 64") {
		t.Fatal(err)
	}

	// An unknown deployment and model selectors the table does not decide: the control plane
	// decides, and its refusals are the answer (code, message and reason as it sent them, this
	// call's request id).
	e.service.resolveBy(map[string]resolution{
		"deployment=nope":                   {code: codes.NotFound, message: `no deployment named "nope"`},
		"model=jets-model":                  {code: codes.FailedPrecondition, message: `model "jets-model" has several versions deployed; name one`},
		"model=jets-model version=9.9":      {code: codes.NotFound, message: `version "9.9" of "jets-model" is not deployed`},
		"model=jets-model alias=production": {code: codes.FailedPrecondition, message: `alias "production" names version 2.0, which no deployment serves`},
		"model=jets-model run=5":            {code: codes.NotFound, message: `run 5 of "jets-model" has no deployment`},
	})
	_, err = e.client.Predict(reader(ctx, "x-request-id", "nope-1"), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Deployment{Deployment: "nope"}})
	refusedAs(t, err, codes.NotFound, "NOT_FOUND", `no deployment named "nope"`, "nope-1")
	for _, c := range []struct {
		sel     *inferencev1.ModelSelector
		code    codes.Code
		reason  string
		message string
	}{
		{&inferencev1.ModelSelector{Model: "jets-model"}, // no version or alias: a choice among versions
			codes.FailedPrecondition, "FAILED_PRECONDITION", `model "jets-model" has several versions deployed; name one`},
		{&inferencev1.ModelSelector{Model: "jets-model", Selector: &inferencev1.ModelSelector_ParametersVersion{ParametersVersion: "9.9"}},
			codes.NotFound, "NOT_FOUND", `version "9.9" of "jets-model" is not deployed`},
		{&inferencev1.ModelSelector{Model: "jets-model", Selector: &inferencev1.ModelSelector_Alias{Alias: "production"}}, // no deployment follows it
			codes.FailedPrecondition, "FAILED_PRECONDITION", `alias "production" names version 2.0, which no deployment serves`},
		{&inferencev1.ModelSelector{Model: "jets-model", Selector: &inferencev1.ModelSelector_GlobalTagRun{GlobalTagRun: &inferencev1.GlobalTagRun{Run: 5}}},
			codes.NotFound, "NOT_FOUND", `run 5 of "jets-model" has no deployment`},
	} {
		_, err = e.client.Predict(reader(ctx, "x-request-id", "sel"), &inferencev1.PredictRequest{
			Route: &inferencev1.PredictRequest_Model{Model: c.sel}, Inputs: []*commonv1.Tensor{x(1)}})
		refusedAs(t, err, c.code, c.reason, c.message, "sel")
	}
	if n := len(e.service.resolveRequests()); n != 5 {
		t.Fatalf("%d Resolve calls: the deployment in the table was resolved too", n)
	}
	// A model selector naming the version of one deployment: served here, as that deployment,
	// without asking the control plane.
	resp, err = e.client.Predict(reader(ctx), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets-model",
			Selector: &inferencev1.ModelSelector_ParametersVersion{ParametersVersion: "1.0"}}},
		Inputs: []*commonv1.Tensor{x(2)}})
	if err != nil || resp.Deployment != "jets" || resp.Parameters.GetVersion() != "1.0" || len(resp.Outputs) != 2 {
		t.Fatal(resp, err)
	}
	if n := len(e.service.resolveRequests()); n != 5 {
		t.Fatalf("%d Resolve calls: a selector the table decides was resolved", n)
	}

	// Authentication: the control plane's refusal, with this call's request id.
	_, err = e.client.Predict(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong", "x-request-id", "r9"),
		&inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"}, Inputs: []*commonv1.Tensor{x(1)}})
	if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "the token is unknown or has been revoked" {
		t.Fatal(err)
	}
	if info, req, _ := details(t, err); info == nil || info.Reason != "UNAUTHENTICATED" || req == nil || req.RequestId != "r9" {
		t.Fatalf("%v %v", info, req)
	}
	e.service.mu.Lock()
	authN := e.service.authN
	e.service.mu.Unlock()
	if authN != 2 { // "Bearer reader" once (cached), "Bearer wrong" once
		t.Fatalf("%d Authorize calls", authN)
	}

	// Triton down: UNAVAILABLE, Triton's words.
	e.triton.set("jets-1", false)
	e.triton.mu.Lock()
	e.triton.notLoadedCode = codes.Internal
	e.triton.mu.Unlock()
	started := time.Now()
	_, err = e.client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
		Inputs: []*commonv1.Tensor{x(1)}})
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() !=
		"the model is not loaded in Triton right now (running the model); it is being (re)loaded, retry shortly" {
		t.Fatal(err)
	}
	if waited := time.Since(started); waited < 250*time.Millisecond {
		t.Fatalf("answered after %v without waiting for a newer route table", waited)
	}

	// Usage reached the service.
	deadline := time.Now().Add(3 * time.Second)
	for {
		e.service.mu.Lock()
		var ok, errs uint64
		samples := 0
		for _, r := range e.service.reports {
			for _, d := range r.Deployments {
				if d.Deployment == "jets" && d.ParametersVersion == "1.0" {
					ok += d.Requests
					errs += d.Errors["INVALID_ARGUMENT"]
					samples += len(d.Samples)
				}
			}
		}
		e.service.mu.Unlock()
		if ok == 3 && errs == 2 && samples == 3 { // 2 by deployment, 1 by model selector
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage: %d requests, %d invalid, %d samples", ok, errs, samples)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestVersionSwitchIsRetriedOnTheNewModel(t *testing.T) {
	for _, code := range []codes.Code{codes.NotFound, codes.Unavailable} {
		e := start(t)
		e.triton.notLoadedCode = code
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
		// The old model goes away; the new table arrives 100 ms later.
		e.triton.set("jets-1", false)
		e.triton.set("jets-2", true)
		go func() {
			time.Sleep(100 * time.Millisecond)
			e.service.tables <- &inferencev1.WatchRoutesResponse{Generation: 2, Routes: []*inferencev1.GatewayRoute{jetsRoute("jets-2", "2.0")}}
		}()
		resp, err := e.client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
			Inputs: []*commonv1.Tensor{x(2)}})
		if err != nil || resp.Parameters.GetVersion() != "2.0" {
			t.Fatalf("%v: %v %v", code, resp, err)
		}
		// Now at once on the new route.
		if _, err := e.client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
			Inputs: []*commonv1.Tensor{x(2)}}); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}

func TestNativePredictStream(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	e.service.resolveBy(map[string]resolution{
		"deployment=elsewhere":        {code: codes.NotFound, message: `no deployment named "elsewhere"`},
		"model=m":                     {code: codes.FailedPrecondition, message: `deployment "m-prod" is LOADING: not serving yet`},
		"model=jets-model alias=beta": {deployment: "jets"},
	})

	var trailer metadata.MD
	stream, err := e.client.PredictStream(reader(ctx, "x-request-id", "stream-1"))
	if err != nil {
		t.Fatal(err)
	}
	dep := &inferencev1.PredictStreamRequest_Deployment{Deployment: "jets"}
	send := func(r *inferencev1.PredictStreamRequest) {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	const n = 200 // more than the 64 in flight
	for i := 0; i < n; i++ {
		send(&inferencev1.PredictStreamRequest{RequestId: "r" + itoa(i), Route: dep, Inputs: []*commonv1.Tensor{x(1 + i%5)}})
	}
	bad := x(2)
	bad.RawData = bad.RawData[:5]
	send(&inferencev1.PredictStreamRequest{RequestId: "bad", Route: dep, Inputs: []*commonv1.Tensor{bad}})
	send(&inferencev1.PredictStreamRequest{RequestId: "", Route: dep, Inputs: []*commonv1.Tensor{x(1)}})
	// Not decided by the table: the control plane's answers, per request.
	send(&inferencev1.PredictStreamRequest{RequestId: "elsewhere", Route: &inferencev1.PredictStreamRequest_Deployment{Deployment: "elsewhere"}})
	send(&inferencev1.PredictStreamRequest{RequestId: "m", Route: &inferencev1.PredictStreamRequest_Model{Model: &inferencev1.ModelSelector{Model: "m"}}})
	send(&inferencev1.PredictStreamRequest{RequestId: "beta", Inputs: []*commonv1.Tensor{x(2)},
		Route: &inferencev1.PredictStreamRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets-model",
			Selector: &inferencev1.ModelSelector_Alias{Alias: "beta"}}}})
	send(&inferencev1.PredictStreamRequest{RequestId: "no-route", Inputs: []*commonv1.Tensor{x(1)}})
	send(&inferencev1.PredictStreamRequest{RequestId: "by-version", Inputs: []*commonv1.Tensor{x(3)},
		Route: &inferencev1.PredictStreamRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets-model",
			Selector: &inferencev1.ModelSelector_ParametersVersion{ParametersVersion: "1.0"}}}})
	stream.CloseSend()
	answers := map[string]*inferencev1.PredictStreamResponse{}
	empty := 0
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.RequestId == "" {
			empty++
			if r.Status.GetCode() != int32(codes.InvalidArgument) || r.Status.GetMessage() != "request_id is required" {
				t.Fatalf("%v", r)
			}
			continue
		}
		if answers[r.RequestId] != nil {
			t.Fatalf("%s answered twice", r.RequestId)
		}
		answers[r.RequestId] = r
	}
	trailer = stream.Trailer()
	if first(trailer.Get("x-request-id")) != "stream-1" {
		t.Fatalf("trailer %v", trailer)
	}
	if len(answers) != n+6 || empty != 1 {
		t.Fatalf("%d answers, %d without id", len(answers), empty)
	}
	for i := 0; i < n; i++ {
		r := answers["r"+itoa(i)]
		if r.Status == nil || r.Status.Code != 0 || r.Deployment != "jets" || r.Parameters.GetVersion() != "1.0" ||
			len(r.Outputs) != 2 || r.Outputs[1].Shape[0] != int64(1+i%5) {
			t.Fatalf("r%d: %v", i, r)
		}
	}
	b := answers["bad"]
	if b.Status.GetCode() != int32(codes.InvalidArgument) || b.Status.GetMessage() != `input tensor "x": shape [2, 4] of float32 needs 32 bytes, got 5` ||
		len(b.Status.Details) != 3 {
		t.Fatalf("%v", b)
	}
	if info, req, br := statusDetails(t, b.Status); info == nil || info.Metadata["tensor"] != "x" || req == nil || req.RequestId != "bad" ||
		br == nil || br.FieldViolations[0].Field != "inputs[0]" {
		t.Fatalf("%v %v %v", info, req, br)
	}
	for id, want := range map[string]struct {
		code    codes.Code
		reason  string
		message string
	}{
		"elsewhere": {codes.NotFound, "NOT_FOUND", `no deployment named "elsewhere"`},
		"m":         {codes.FailedPrecondition, "FAILED_PRECONDITION", `deployment "m-prod" is LOADING: not serving yet`},
		"no-route":  {codes.InvalidArgument, "INVALID_ARGUMENT", "route is required: a deployment name or a model"},
	} {
		r := answers[id]
		info, req, br := statusDetails(t, r.Status)
		if r.Status.GetCode() != int32(want.code) || r.Status.GetMessage() != want.message || r.Deployment != "" || len(r.Outputs) != 0 ||
			info == nil || info.Reason != want.reason || req == nil || req.RequestId != id {
			t.Fatalf("%s: %v", id, r)
		}
		if (want.code == codes.InvalidArgument) != (br != nil && len(br.FieldViolations) == 1 && br.FieldViolations[0].Field == "route") {
			t.Fatalf("%s: field violations %v", id, br)
		}
	}
	if v := answers["beta"]; v.Status.GetCode() != 0 || v.Deployment != "jets" || v.Parameters.GetVersion() != "1.0" ||
		len(v.Outputs) != 2 || v.Outputs[1].Shape[0] != 2 {
		t.Fatalf("a selector the control plane resolved to a route is served on it: %v", v)
	}
	resolved := e.service.resolveRequests()
	keys := map[string]bool{}
	for _, r := range resolved {
		if r.Authorization != "Bearer reader" {
			t.Fatalf("Resolve with authorization %q", r.Authorization)
		}
		keys[selectorKey(r)] = true
	}
	if len(resolved) != 3 || !keys["deployment=elsewhere"] || !keys["model=m"] || !keys["model=jets-model alias=beta"] {
		t.Fatalf("Resolve requests %v", resolved)
	}
	if n := e.service.inferenceCalls(); n != 0 {
		t.Fatal("the stream reached the service")
	}
	if v := answers["by-version"]; v.Status.GetCode() != 0 || v.Deployment != "jets" || len(v.Outputs) != 2 {
		t.Fatalf("a model selector the table decides is served here: %v", v)
	}
}

func TestPredictStreamRefusesDuplicateIDsInFlight(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	e.triton.set("jets-1", false) // every native request waits RetryWait, so "same" stays in flight
	stream, err := e.client.PredictStream(reader(ctx))
	if err != nil {
		t.Fatal(err)
	}
	dep := &inferencev1.PredictStreamRequest_Deployment{Deployment: "jets"}
	_ = stream.Send(&inferencev1.PredictStreamRequest{RequestId: "same", Route: dep, Inputs: []*commonv1.Tensor{x(1)}})
	_ = stream.Send(&inferencev1.PredictStreamRequest{RequestId: "same", Route: dep, Inputs: []*commonv1.Tensor{x(1)}})
	stream.CloseSend()
	var got []*inferencev1.PredictStreamResponse
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 2 || got[0].RequestId != "same" || got[0].Status.GetMessage() != `request_id "same" is already in flight` ||
		got[0].Status.GetCode() != int32(codes.InvalidArgument) || len(got[0].Status.Details) != 3 ||
		got[1].RequestId != "same" || got[1].Status.GetCode() != int32(codes.Unavailable) {
		t.Fatalf("%v", got)
	}
	info, req, br := statusDetails(t, got[0].Status)
	if info == nil || info.Reason != "INVALID_ARGUMENT" || info.Domain != "beamops.dev" || req == nil || req.RequestId != "same" ||
		br == nil || len(br.FieldViolations) != 1 || br.FieldViolations[0].Field != "request_id" ||
		br.FieldViolations[0].Description != `request_id "same" is already in flight` {
		t.Fatalf("duplicate's details %v %v %v", info, req, br)
	}
}

func TestModelSelectorsTheTableCannotDecideAreResolved(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	e.service.resolveBy(map[string]resolution{
		"model=jets-model tag=2026A run=7": {deployment: "jets"},
		"model=jets-model run=0":           {deployment: "jets"},
		"model=jets-model alias=canary":    {deployment: "jets"},
	})
	for i, c := range []struct {
		sel  *inferencev1.ModelSelector
		want *inferencev1.ResolveRequest
	}{
		{&inferencev1.ModelSelector{Model: "jets-model", Selector: &inferencev1.ModelSelector_GlobalTagRun{
			GlobalTagRun: &inferencev1.GlobalTagRun{GlobalTag: "2026A", Run: 7}}},
			&inferencev1.ResolveRequest{Authorization: "Bearer reader", Model: "jets-model", GlobalTag: "2026A", Run: proto.Int64(7)}},
		// Run 0 of the model's only global tag: the run is sent, as set.
		{&inferencev1.ModelSelector{Model: "jets-model", Selector: &inferencev1.ModelSelector_GlobalTagRun{
			GlobalTagRun: &inferencev1.GlobalTagRun{}}},
			&inferencev1.ResolveRequest{Authorization: "Bearer reader", Model: "jets-model", Run: proto.Int64(0)}},
		// An alias no deployment follows.
		{&inferencev1.ModelSelector{Model: "jets-model", Selector: &inferencev1.ModelSelector_Alias{Alias: "canary"}},
			&inferencev1.ResolveRequest{Authorization: "Bearer reader", Model: "jets-model", Alias: "canary"}},
	} {
		var trailer metadata.MD
		resp, err := e.client.Predict(reader(ctx, "x-request-id", "sel-"+itoa(i)), &inferencev1.PredictRequest{
			Route: &inferencev1.PredictRequest_Model{Model: c.sel}, Inputs: []*commonv1.Tensor{x(3)}}, grpc.Trailer(&trailer))
		if err != nil || resp.Deployment != "jets" || resp.Parameters.GetModel() != "jets-model" || resp.Parameters.GetVersion() != "1.0" ||
			len(resp.Outputs) != 2 || resp.Outputs[1].Shape[0] != 3 {
			t.Fatal(c.sel, resp, err)
		}
		if p := math.Float32frombits(binary.LittleEndian.Uint32(resp.Outputs[0].RawData[8:])); p != 0.1 {
			t.Fatalf("probability %v", p)
		}
		if first(trailer.Get("x-request-id")) != "sel-"+itoa(i) {
			t.Fatalf("trailer %v", trailer)
		}
		resolved := e.service.resolveRequests()
		if len(resolved) != i+1 || !proto.Equal(resolved[i], c.want) {
			t.Fatalf("Resolve requests %v, want last %v", resolved, c.want)
		}
		if e.triton.callsOf("jets-1") != i+1 {
			t.Fatal("not served on the route the control plane named")
		}
	}
}

func TestAResolvedDeploymentNotInTheTableIsUnavailable(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	e.service.resolveBy(map[string]resolution{
		"model=jets-model alias=next": {deployment: "jets-next"}, // no table brings it
		"deployment=jets-new":         {deployment: "jets-new"},  // deployed, in a table on its way
	})
	_, err := e.client.Predict(reader(ctx, "x-request-id", "u1"), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets-model",
			Selector: &inferencev1.ModelSelector_Alias{Alias: "next"}}}, Inputs: []*commonv1.Tensor{x(1)}})
	refusedAs(t, err, codes.Unavailable, "UNAVAILABLE", `deployment "jets-next" is not serving now; retry shortly`, "u1")
	if e.triton.callsOf("jets-1") != 0 {
		t.Fatal("served on another route")
	}

	// The table that holds it arrives while the request waits: served on it.
	fresh := jetsRoute("jets-1", "1.1")
	fresh.Deployment = "jets-new"
	go func() {
		time.Sleep(100 * time.Millisecond)
		e.service.tables <- &inferencev1.WatchRoutesResponse{Generation: 2,
			Routes: []*inferencev1.GatewayRoute{jetsRoute("jets-1", "1.0"), fresh}}
	}()
	resp, err := e.client.Predict(reader(ctx), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets-new"}, Inputs: []*commonv1.Tensor{x(1)}})
	if err != nil || resp.Deployment != "jets-new" || resp.Parameters.GetVersion() != "1.1" {
		t.Fatal(resp, err)
	}
	// Now from the table, without asking again.
	resp, err = e.client.Predict(reader(ctx), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets-new"}, Inputs: []*commonv1.Tensor{x(1)}})
	if err != nil || resp.Deployment != "jets-new" {
		t.Fatal(resp, err)
	}
	if n := len(e.service.resolveRequests()); n != 2 {
		t.Fatalf("%d Resolve calls", n)
	}
}

func TestResolveUnreachableIsUnavailable(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	e.service.mu.Lock()
	e.service.resolve = func(*inferencev1.ResolveRequest) (string, error) {
		return "", status.Error(codes.Unavailable, "the registry is down")
	}
	e.service.mu.Unlock()
	_, err := e.client.Predict(reader(ctx, "x-request-id", "down"), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Deployment{Deployment: "other"}, Inputs: []*commonv1.Tensor{x(1)}})
	if status.Code(err) != codes.Unavailable {
		t.Fatal(err)
	}
	if info, req, _ := details(t, err); info == nil || info.Reason != "UNAVAILABLE" || req == nil || req.RequestId != "down" {
		t.Fatalf("%v %v", info, req)
	}
}

func TestARequestWithoutARouteIsInvalid(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	const message = "route is required: a deployment name or a model"
	check := func(what string, st *spb.Status, requestID string) {
		t.Helper()
		info, req, br := statusDetails(t, st)
		if st.GetCode() != int32(codes.InvalidArgument) || st.GetMessage() != message ||
			info == nil || info.Reason != "INVALID_ARGUMENT" || req == nil || req.RequestId != requestID ||
			br == nil || len(br.FieldViolations) != 1 || br.FieldViolations[0].Field != "route" || br.FieldViolations[0].Description != message {
			t.Fatalf("%s: %v", what, st)
		}
	}
	for name, route := range map[string]func(*inferencev1.PredictRequest){
		"none":             func(*inferencev1.PredictRequest) {},
		"empty deployment": func(r *inferencev1.PredictRequest) { r.Route = &inferencev1.PredictRequest_Deployment{} },
		"empty model": func(r *inferencev1.PredictRequest) {
			r.Route = &inferencev1.PredictRequest_Model{Model: &inferencev1.ModelSelector{}}
		},
	} {
		req := &inferencev1.PredictRequest{Inputs: []*commonv1.Tensor{x(1)}}
		route(req)
		_, err := e.client.Predict(reader(ctx, "x-request-id", "nr"), req)
		check(name, status.Convert(err).Proto(), "nr")
	}

	stream, err := e.client.PredictStream(reader(ctx))
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&inferencev1.PredictStreamRequest{RequestId: "a", Inputs: []*commonv1.Tensor{x(1)}})
	_ = stream.Send(&inferencev1.PredictStreamRequest{RequestId: "b", Inputs: []*commonv1.Tensor{x(1)},
		Route: &inferencev1.PredictStreamRequest_Deployment{Deployment: "jets"}})
	stream.CloseSend()
	got := map[string]*inferencev1.PredictStreamResponse{}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[r.RequestId] = r
	}
	if len(got) != 2 || got["b"].Status.GetCode() != 0 || got["b"].Deployment != "jets" {
		t.Fatalf("%v", got)
	}
	check("on a stream", got["a"].Status, "a")
	if n := len(e.service.resolveRequests()); n != 0 {
		t.Fatalf("%d Resolve calls for requests without a route", n)
	}
	if e.triton.callsOf("jets-1") != 1 {
		t.Fatal("a request without a route reached Triton")
	}
}

func TestMalformedRequestsAreInvalid(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	raw := grpc.ForceCodecV2(rawcodec.Codec{})
	// Field 1 (deployment) with invalid UTF-8, and a length past the end of the message.
	for _, b := range [][]byte{{0x0a, 0x01, 0xff}, {0x0a, 0x10, 'j'}} {
		var out rawcodec.Frame
		err := e.conn.Invoke(reader(ctx, "x-request-id", "m1"), "/beamops.inference.v1.InferenceService/Predict",
			rawcodec.FromBytes(b), &out, raw)
		refusedAs(t, err, codes.InvalidArgument, "INVALID_ARGUMENT", "the request is not a valid PredictRequest message", "m1")
	}

	// On a stream: the stream ends INVALID_ARGUMENT; requests before it may have been answered.
	stream, err := e.conn.NewStream(reader(ctx), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/beamops.inference.v1.InferenceService/PredictStream", raw)
	if err != nil {
		t.Fatal(err)
	}
	good, err := proto.Marshal(&inferencev1.PredictStreamRequest{RequestId: "ok", Inputs: []*commonv1.Tensor{x(1)},
		Route: &inferencev1.PredictStreamRequest_Deployment{Deployment: "jets"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(rawcodec.FromBytes(good)); err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(rawcodec.FromBytes([]byte{0x12, 0x02, 0xc3, 0x28})); err != nil { // deployment: invalid UTF-8
		t.Fatal(err)
	}
	for answers := 0; ; answers++ {
		var fr rawcodec.Frame
		err := stream.RecvMsg(&fr)
		if err == nil {
			var r inferencev1.PredictStreamResponse
			if proto.Unmarshal(fr.Bytes(), &r) != nil || r.RequestId != "ok" || answers > 0 {
				t.Fatalf("unexpected answer %v", &r)
			}
			fr.Free()
			continue
		}
		if status.Code(err) != codes.InvalidArgument ||
			status.Convert(err).Message() != "a request on the stream is not a valid PredictStreamRequest message" {
			t.Fatal(err)
		}
		break
	}
}

func TestPredictStreamAuthFailsTheStream(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	stream, err := e.client.PredictStream(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.Unauthenticated {
		t.Fatal(err)
	}
}

func TestRoutesSurviveAWatchRoutesReconnect(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	e.service.tables <- nil // the stream ends
	time.Sleep(50 * time.Millisecond)
	resp, err := e.client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
		Inputs: []*commonv1.Tensor{x(1)}})
	if err != nil || resp.Deployment != "jets" {
		t.Fatal(resp, err)
	}
	// The watcher reconnects and gets the next table.
	e.pushTable(t, 2, jetsRoute("jets-1", "1.1"))
	resp, err = e.client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
		Inputs: []*commonv1.Tensor{x(1)}})
	if err != nil || resp.Parameters.GetVersion() != "1.1" {
		t.Fatal(resp, err)
	}
}

func TestLargeRequestIsResourceExhausted(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.pushTable(t, 1, jetsRoute("jets-1", "1.0"))
	_, err := e.client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
		Inputs: []*commonv1.Tensor{x(300000)}}) // 4.8 MB > 4 MiB
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatal(err)
	}
}

func TestANewTableIsAcknowledgedAtOnce(t *testing.T) {
	e := start(t, func(c *Config) { c.ReportInterval = time.Hour })
	for _, gen := range []uint64{1700000000000, 1700000000001} {
		e.pushTable(t, gen, jetsRoute("jets-1", "1.0"))
		deadline := time.Now().Add(2 * time.Second)
		for {
			e.service.mu.Lock()
			acked := len(e.service.reports) > 0 && e.service.reports[len(e.service.reports)-1].RoutesGeneration == gen
			e.service.mu.Unlock()
			if acked {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("generation %d not reported", gen)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}
