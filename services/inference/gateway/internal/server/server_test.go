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
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
)

type env struct {
	triton  *fakeTriton
	service *fakeService
	gw      *Server
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
	e.client = inferencev1.NewInferenceServiceClient(conn)
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

func TestWithoutRoutesEverythingIsForwarded(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := e.client.Predict(reader(ctx, "x-custom", "c"), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"}, Inputs: []*commonv1.Tensor{x(2)}})
	if err != nil || resp.Deployment != "python" {
		t.Fatalf("%v %v", resp, err)
	}
	e.service.mu.Lock()
	md := e.service.lastMD
	e.service.mu.Unlock()
	if first(md.Get("x-custom")) != "c" || first(md.Get("authorization")) != "Bearer reader" {
		t.Fatalf("metadata not forwarded: %v", md)
	}

	// Headers, trailers, status and details as the service sent them.
	var header, trailer metadata.MD
	_, err = e.client.GetDeployment(ctx, &inferencev1.GetDeploymentRequest{Name: "missing"}, grpc.Header(&header), grpc.Trailer(&trailer))
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "no deployment named 'missing'" {
		t.Fatal(err)
	}
	if info, req, _ := details(t, err); info == nil || info.Reason != "NOT_FOUND" || req == nil || req.RequestId != "py-id" {
		t.Fatalf("details lost: %v %v", info, req)
	}
	if first(header.Get("x-header")) != "h" || first(trailer.Get("x-trailer")) != "t" || first(trailer.Get("x-bin-bin")) != "\x00\x01" {
		t.Fatalf("header %v trailer %v", header, trailer)
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

	// PredictStream with no table: forwarded whole.
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
	count := 0
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil || r.Deployment != "python" {
			t.Fatal(r, err)
		}
		count++
	}
	if count != 5 {
		t.Fatal(count)
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

	// Bad input: refused before Triton, with the Python service's details.
	bad := x(2)
	bad.Dtype = commonv1.DataType_DATA_TYPE_FLOAT64
	_, err = e.client.Predict(reader(ctx, "x-request-id", "rid"), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"}, Inputs: []*commonv1.Tensor{bad}}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "input 'x': dtype FLOAT64, the model expects FLOAT32" {
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

	// Unknown deployment and model selectors the table does not decide: the service answers.
	_, err = e.client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "nope"}})
	if status.Code(err) != codes.NotFound {
		t.Fatal(err)
	}
	for _, sel := range []*inferencev1.ModelSelector{
		{Model: "jets-model"}, // no version or alias: a choice among versions
		{Model: "jets-model", Selector: &inferencev1.ModelSelector_ParametersVersion{ParametersVersion: "9.9"}},
		{Model: "jets-model", Selector: &inferencev1.ModelSelector_Alias{Alias: "production"}}, // no deployment follows it
		{Model: "jets-model", Selector: &inferencev1.ModelSelector_GlobalTagRun{GlobalTagRun: &inferencev1.GlobalTagRun{Run: 5}}},
	} {
		resp, err = e.client.Predict(reader(ctx), &inferencev1.PredictRequest{
			Route: &inferencev1.PredictRequest_Model{Model: sel}, Inputs: []*commonv1.Tensor{x(1)}})
		if err != nil || resp.Deployment != "python" {
			t.Fatal(sel, resp, err)
		}
	}
	// A model selector naming the version of one deployment: served here, as that deployment.
	resp, err = e.client.Predict(reader(ctx), &inferencev1.PredictRequest{
		Route: &inferencev1.PredictRequest_Model{Model: &inferencev1.ModelSelector{Model: "jets-model",
			Selector: &inferencev1.ModelSelector_ParametersVersion{ParametersVersion: "1.0"}}},
		Inputs: []*commonv1.Tensor{x(2)}})
	if err != nil || resp.Deployment != "jets" || resp.Parameters.GetVersion() != "1.0" || len(resp.Outputs) != 2 {
		t.Fatal(resp, err)
	}

	// Authentication: the service's refusal, with this call's request id.
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
	send(&inferencev1.PredictStreamRequest{RequestId: "py1", Route: &inferencev1.PredictStreamRequest_Deployment{Deployment: "elsewhere"}})
	send(&inferencev1.PredictStreamRequest{RequestId: "py2", Route: &inferencev1.PredictStreamRequest_Model{Model: &inferencev1.ModelSelector{Model: "m"}}})
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
	if len(answers) != n+4 || empty != 1 {
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
	if b.Status.GetCode() != int32(codes.InvalidArgument) || !strings.Contains(b.Status.GetMessage(), "'x'") ||
		len(b.Status.Details) != 3 {
		t.Fatalf("%v", b)
	}
	if answers["py1"].Deployment != "python" || answers["py2"].Deployment != "python" {
		t.Fatal("requests without a route were not answered by the service")
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
	if len(got) != 2 || got[0].Status.GetMessage() != "request_id 'same' is already in flight" ||
		got[0].Status.GetCode() != int32(codes.InvalidArgument) || len(got[0].Status.Details) != 0 ||
		got[1].Status.GetCode() != int32(codes.Unavailable) {
		t.Fatalf("%v", got)
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
