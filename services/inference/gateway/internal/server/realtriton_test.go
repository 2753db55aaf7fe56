package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
)

// TestAgainstRealTriton runs when BEAMOPS_GATEWAY_TEST_TRITON names a Triton (host:port) that
// has the models jets-1 and jets-2 loaded: x FP32 [-1, 6] -> probabilities FP32 [-1, 3],
// label INT64 [-1] (tests/fixtures/inference.py mlp_onnx, max_batch_size 64). It compares the
// gateway's answers with Triton's own, and unloads jets-1 while requests flow and the route
// table moves the deployment to jets-2: no request may fail. jets-1 stays unloaded afterwards.
func TestAgainstRealTriton(t *testing.T) {
	addr := os.Getenv("BEAMOPS_GATEWAY_TEST_TRITON")
	if addr == "" {
		t.Skip("BEAMOPS_GATEWAY_TEST_TRITON not set")
	}
	service := &fakeService{token: "gw-token", tables: make(chan *inferencev1.WatchRoutesResponse, 10)}
	serviceAddr := serve(t, func(s *grpc.Server) {
		inferencev1.RegisterInferenceServiceServer(s, service)
		inferencev1.RegisterGatewayServiceServer(s, service)
	})
	gw, err := Start(Config{Listen: "127.0.0.1:0", Service: serviceAddr, Triton: addr, Token: "gw-token",
		MaxMessageBytes: 64 << 20, InferTimeout: 30 * time.Second, ReportInterval: 100 * time.Millisecond,
		DriftSamplesPerS: 100, TritonConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Stop(time.Second)
	e := &env{service: service, gw: gw}
	conn, _ := grpc.NewClient(gw.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	client := inferencev1.NewInferenceServiceClient(conn)
	tconn, _ := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer tconn.Close()
	triton := tritonpb.NewGRPCInferenceServiceClient(tconn)

	route := func(model, version string) *inferencev1.GatewayRoute {
		return &inferencev1.GatewayRoute{Deployment: "jets", Model: "jets", ParametersVersion: version, TritonModel: model,
			Inputs: []*commonv1.TensorSpec{{Name: "x", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 6}}},
			Outputs: []*commonv1.TensorSpec{{Name: "probabilities", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 3}},
				{Name: "label", Dtype: commonv1.DataType_DATA_TYPE_INT64, Shape: []int64{-1}}},
			MaxBatchSize: 64, Drift: true}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for _, m := range []string{"jets-1", "jets-2"} { // (again: a previous run unloaded jets-1)
		if _, err := triton.RepositoryModelLoad(ctx, &tritonpb.RepositoryModelLoadRequest{ModelName: m}); err != nil {
			t.Fatal(err)
		}
	}
	e.pushTable(t, 1, route("jets-1", "1.0"))

	rows := 32
	data := make([]byte, rows*24)
	for i := 0; i < rows*6; i++ {
		binary.LittleEndian.PutUint32(data[i*4:], math.Float32bits(float32(i%7)-3))
	}
	input := &commonv1.Tensor{Name: "x", Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{int64(rows), 6}, RawData: data}
	resp, err := client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
		Inputs: []*commonv1.Tensor{input}})
	if err != nil {
		t.Fatal(err)
	}
	direct, err := triton.ModelInfer(ctx, &tritonpb.ModelInferRequest{ModelName: "jets-1",
		Inputs:           []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{int64(rows), 6}}},
		Outputs:          []*tritonpb.ModelInferRequest_InferRequestedOutputTensor{{Name: "probabilities"}, {Name: "label"}},
		RawInputContents: [][]byte{data}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.Outputs[0].RawData, direct.RawOutputContents[0]) || !bytes.Equal(resp.Outputs[1].RawData, direct.RawOutputContents[1]) {
		t.Fatal("the gateway's outputs differ from Triton's")
	}
	if s := resp.Outputs[1].Shape; len(s) != 1 || s[0] != int64(rows) || resp.Outputs[0].Shape[1] != 3 {
		t.Fatalf("shapes %v %v", resp.Outputs[0].Shape, resp.Outputs[1].Shape)
	}

	// A version switch under load: jets-1 is unloaded while requests flow, the table moves to jets-2.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := client.Predict(reader(ctx), &inferencev1.PredictRequest{Route: &inferencev1.PredictRequest_Deployment{Deployment: "jets"},
					Inputs: []*commonv1.Tensor{input}})
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	// The old model goes first (requests now find it missing and wait for a new route), the
	// table follows 300 ms later.
	if _, err := triton.RepositoryModelUnload(ctx, &tritonpb.RepositoryModelUnloadRequest{ModelName: "jets-1"}); err != nil {
		t.Fatal(err)
	}
	before := ok.Load()
	time.Sleep(300 * time.Millisecond)
	if ok.Load()-before > 8 {
		t.Fatalf("%d requests answered while no route had a loaded model", ok.Load()-before)
	}
	service.tables <- &inferencev1.WatchRoutesResponse{Generation: 2, Routes: []*inferencev1.GatewayRoute{route("jets-2", "2.0")}}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests during the switch, %d failed", ok.Load()+failed.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed during the switch, first: %v", failed.Load(), firstErr.Load())
	}
	// What Triton itself answers for the unloaded model (logged; the gateway answers UNAVAILABLE for it).
	_, err = triton.ModelInfer(ctx, &tritonpb.ModelInferRequest{ModelName: "jets-1",
		Inputs:           []*tritonpb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 6}}},
		RawInputContents: [][]byte{data[:24]}})
	t.Logf("Triton on an unloaded model: %v %q", status.Code(err), status.Convert(err).Message())
	if status.Code(err) == codes.OK {
		t.Fatal("jets-1 still answers")
	}
}
