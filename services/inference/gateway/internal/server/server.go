// Package server wires the gateway together: the gRPC server (every call goes to
// predict.Gateway.Handle), the connections to the Python service (forwarding, GatewayService)
// and to Triton, the route table watcher and the usage reporter.
package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/encoding/gzip" // callers that compress are understood, as by the service
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/auth"
	"github.com/beamops/beamops/services/inference/gateway/internal/coalesce"
	"github.com/beamops/beamops/services/inference/gateway/internal/control"
	"github.com/beamops/beamops/services/inference/gateway/internal/dataplane"
	"github.com/beamops/beamops/services/inference/gateway/internal/embedded"
	"github.com/beamops/beamops/services/inference/gateway/internal/forward"
	"github.com/beamops/beamops/services/inference/gateway/internal/oip"
	"github.com/beamops/beamops/services/inference/gateway/internal/oiphttp"
	"github.com/beamops/beamops/services/inference/gateway/internal/predict"
	"github.com/beamops/beamops/services/inference/gateway/internal/rawcodec"
	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
	"github.com/beamops/beamops/services/inference/gateway/internal/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/usage"
)

// coalesceMaxBytes: requests joined into one Triton call carry at most this many input bytes
// together (the Python service's Coalescer.max_bytes).
const coalesceMaxBytes = 4 << 20

// Config is what the command line sets.
// MaxStreamsPerConnection is the HTTP/2 MAX_CONCURRENT_STREAMS the gateway advertises: calls at
// once on one client connection (grpc-go's default is unbounded), as the Python services do.
const MaxStreamsPerConnection = 100

type Config struct {
	Listen            string            // HOST:PORT
	Service           string            // HOST:PORT of the Python inference service
	Triton            string            // HOST:PORT of Triton's gRPC endpoint; with Embedded, where the service reaches it (loopback)
	Embedded          *embedded.Options // when set, Triton runs in the gateway's own process (embedded package)
	Token             string            // for GatewayService calls
	MaxMessageBytes   int
	InferTimeout      time.Duration
	ReportInterval    time.Duration
	DriftSamplesPerS  int
	TritonConnections int
	// CoalesceInFlight: calls to one batching Triton model in flight at once; requests arriving
	// meanwhile are joined into one call (coalesce package). 0: no coalescing.
	CoalesceInFlight int
	RetryWait        time.Duration // 0: dataplane.DefaultRetryWait
	// HTTPListen: where the Open Inference Protocol's REST front listens ("": no REST front).
	HTTPListen string
	// LoopbackListen: with TLS, a loopback address where the gRPC fronts are also served in
	// plaintext, for the service alone ("": none).
	LoopbackListen string
	// OpenMetadata: the Open Inference Protocol's setup calls answer without credentials.
	OpenMetadata bool
	// ConfigChecksums: ModelConfig names each artifact's sha256 in Triton's checksum agent.
	ConfigChecksums bool
	Version         string // in the protocol's ServerMetadata
	TLS             TLS    // callers are served TLS when enabled (the service port stays plaintext loopback)
}

// Server is a started gateway.
type Server struct {
	lis        net.Listener
	grpc       *grpc.Server
	conns      []*grpc.ClientConn
	triton     *triton.Client
	embedded   *embedded.Server
	kserve     *grpc.Server // Triton's API for the service, with Embedded
	loopback   *grpc.Server // the fronts in plaintext on LoopbackListen, with TLS
	stopBg     context.CancelFunc
	background sync.WaitGroup
	served     chan error
	httpLis    net.Listener
	http       *http.Server
	Routes     *routes.Store
	OIP        *oip.Front
}

// Start listens on cfg.Listen and starts serving.
func Start(cfg Config) (*Server, error) {
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %v", cfg.Listen, err)
	}
	s := &Server{lis: lis, served: make(chan error, 1)}
	if err := s.start(cfg); err != nil {
		_ = lis.Close()
		s.closeConns()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(cfg Config) error {
	connect := grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 5 * time.Second,
	})
	alive := grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true})
	limits := []grpc.CallOption{grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes)}
	// Forwarded calls: raw bytes, the same size limit as the gateway's own.
	forwardConn, err := grpc.NewClient(cfg.Service, grpc.WithTransportCredentials(insecure.NewCredentials()), connect, alive,
		grpc.WithDefaultCallOptions(append([]grpc.CallOption{grpc.ForceCodecV2(rawcodec.Codec{})}, limits...)...))
	if err != nil {
		return fmt.Errorf("--service %s: %v", cfg.Service, err)
	}
	s.conns = append(s.conns, forwardConn)
	// GatewayService calls, on a connection of their own (never queued behind large forwarded
	// messages).
	controlConn, err := grpc.NewClient(cfg.Service, grpc.WithTransportCredentials(insecure.NewCredentials()), connect, alive,
		grpc.WithDefaultCallOptions(limits...))
	if err != nil {
		return fmt.Errorf("--service %s: %v", cfg.Service, err)
	}
	s.conns = append(s.conns, controlConn)
	tritonInfer, err := s.startTriton(cfg)
	if err != nil {
		return err
	}
	forwardConn.Connect()
	controlConn.Connect()

	ctl := control.New(controlConn, cfg.Token)
	// Drift samples: at most half a message, and 16 MiB, per report.
	recorder := usage.NewRecorder(cfg.DriftSamplesPerS, int64(min(cfg.MaxMessageBytes/2, 16<<20)))
	infer := reportDeadModels(tritonInfer, recorder.ModelProcessDied)
	var coalescers *coalesce.Set
	if cfg.CoalesceInFlight > 0 {
		coalescers = &coalesce.Set{Run: infer, MaxBytes: coalesceMaxBytes,
			MaxInFlight: cfg.CoalesceInFlight, Timeout: cfg.InferTimeout}
	}
	s.Routes = routes.NewStore(recorder, coalescers)
	stats := dataplane.NewStatistics()
	plane := &dataplane.Plane{Routes: s.Routes, Infer: infer, Retryable: triton.Retryable, RetryWait: cfg.RetryWait, Stats: stats}
	authorizer := auth.New(ctl.Authorize)
	ctl.AuthChanged = authorizer.Clear
	resolve := resolver(ctl)
	s.OIP = &oip.Front{Routes: s.Routes, Plane: plane, Auth: authorizer, Resolve: resolve, Deployer: newDeployer(forwardConn),
		Stats: stats, OpenMetadata: cfg.OpenMetadata, Checksums: cfg.ConfigChecksums, Version: cfg.Version}
	gw := &predict.Gateway{
		Routes:       s.Routes,
		Auth:         authorizer,
		Plane:        plane,
		Resolve:      resolve,
		Forward:      &forward.Forwarder{Conn: forwardConn},
		MaxSendBytes: cfg.MaxMessageBytes,
		OIP:          s.OIP.Handle,
	}
	options := []grpc.ServerOption{
		grpc.UnknownServiceHandler(gw.Handle),
		grpc.ForceServerCodecV2(rawcodec.Codec{}),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.MaxConcurrentStreams(MaxStreamsPerConnection),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.ReadBufferSize(256 << 10), grpc.WriteBufferSize(256 << 10),
		// Fixed flow-control windows (as towards Triton): they turn off grpc-go's BDP estimation,
		// whose PINGs cost the caller and the gateway a write, a read and a wakeup each.
		grpc.InitialWindowSize(4 << 20), grpc.InitialConnWindowSize(16 << 20),
	}
	if cfg.TLS.Enabled() {
		creds, err := cfg.TLS.serverOption()
		if err != nil {
			return err
		}
		if cfg.LoopbackListen != "" {
			lis, err := net.Listen("tcp", cfg.LoopbackListen)
			if err != nil {
				return fmt.Errorf("cannot listen on %s (loopback): %v", cfg.LoopbackListen, err)
			}
			s.loopback = grpc.NewServer(options...)
			go func() { _ = s.loopback.Serve(lis) }()
		}
		options = append(options, creds)
	}
	s.grpc = grpc.NewServer(options...)

	ctx, stop := context.WithCancel(context.Background())
	s.stopBg = stop
	reporter := &usage.Reporter{Recorder: recorder, Interval: cfg.ReportInterval, Timeout: 5 * time.Second,
		Generation: func() uint64 { return s.Routes.Load().Generation },
		Send:       func(ctx context.Context, req *inferencev1.ReportUsageRequest) error { return ctl.ReportUsage(ctx, req) }}
	s.background.Add(2)
	// After each new table, a report tells the service that the gateway serves with it.
	go func() { defer s.background.Done(); ctl.WatchRoutes(ctx, s.Routes, reporter.Kick) }()
	go func() { defer s.background.Done(); reporter.Run(ctx) }()
	go func() { s.served <- s.grpc.Serve(s.lis) }()
	if cfg.HTTPListen != "" {
		return s.serveHTTP(cfg)
	}
	return nil
}

// serveHTTP starts the REST front on cfg.HTTPListen, with the gRPC front's TLS settings.
func (s *Server) serveHTTP(cfg Config) error {
	lis, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (REST): %v", cfg.HTTPListen, err)
	}
	s.httpLis = lis
	s.http = &http.Server{Handler: oiphttp.Handler(s.OIP, int64(cfg.MaxMessageBytes)),
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: log.New(io.Discard, "", 0)}
	if cfg.TLS.Enabled() {
		config, err := cfg.TLS.config()
		if err != nil {
			return err
		}
		s.http.TLSConfig = config
		lis = tls.NewListener(lis, config)
	}
	go func() { _ = s.http.Serve(lis) }()
	return nil
}

// HTTPAddr is where the REST front listens (nil without one).
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLis == nil {
		return nil
	}
	return s.httpLis.Addr()
}

// resolver asks the control plane which deployment serves a selector (GatewayService.Resolve).
func resolver(ctl *control.Client) routes.ResolveFunc {
	return func(ctx context.Context, authorization string, sel routes.Selector) (string, *rpcstatus.Error) {
		call, cancel := context.WithTimeout(ctx, auth.CallTimeout)
		defer cancel()
		resp, err := ctl.Resolve(call, &inferencev1.ResolveRequest{Authorization: authorization, Deployment: sel.Deployment, Model: sel.Model,
			Version: sel.Version, Alias: sel.Alias, Run: sel.Run, GlobalTag: sel.GlobalTag})
		if err != nil {
			st := status.Convert(err)
			if st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded {
				return "", rpcstatus.New(codes.Unavailable, "the inference service is not reachable to resolve the "+
					"model's version; retry shortly")
			}
			return "", rpcstatus.FromStatus(st)
		}
		return resp.GetDeployment(), nil
	}
}

// reportDeadModels passes on each Triton model whose process died (the service reloads it).
func reportDeadModels(infer dataplane.InferFunc, died func(model string)) dataplane.InferFunc {
	return func(ctx context.Context, model string, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, *rpcstatus.Error) {
		result, err := infer(ctx, model, inputs, outputs)
		if err == triton.ErrModelProcessDied {
			died(model)
		}
		return result, err
	}
}

// startTriton connects to Triton, or starts it in this process and serves its API for the
// service on cfg.Triton; it returns what runs a request on it.
func (s *Server) startTriton(cfg Config) (dataplane.InferFunc, error) {
	if cfg.Embedded == nil {
		client, err := triton.Dial(cfg.Triton, cfg.TritonConnections, cfg.InferTimeout)
		if err != nil {
			return nil, fmt.Errorf("--triton %s: %v", cfg.Triton, err)
		}
		s.triton = client
		return client.Infer, nil
	}
	lis, err := net.Listen("tcp", cfg.Triton)
	if err != nil {
		return nil, fmt.Errorf("cannot serve Triton's API on %s: %v", cfg.Triton, err)
	}
	server, err := embedded.Start(*cfg.Embedded)
	if err != nil {
		_ = lis.Close()
		return nil, err
	}
	s.embedded = server
	s.kserve = grpc.NewServer(grpc.MaxRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.UnaryInterceptor(embedded.RequireToken(cfg.Token)))
	tritonpb.RegisterGRPCInferenceServiceServer(s.kserve, &embedded.KServe{Server: server})
	go func() { _ = s.kserve.Serve(lis) }()
	return triton.Local(server.Infer, cfg.InferTimeout), nil
}

// Addr is the address it listens on (the port actually bound).
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Served reports the end of serving (an error unless Stop ended it).
func (s *Server) Served() <-chan error { return s.served }

// Stop stops gracefully, or at once after grace: running calls finish, the route watcher
// stops, what usage is left is reported once, connections close.
func (s *Server) Stop(grace time.Duration) {
	stopped := make(chan struct{})
	go func() {
		if s.loopback != nil {
			s.loopback.GracefulStop()
		}
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(grace):
		log.Printf("calls still running after %v: stopping them", grace)
		if s.loopback != nil {
			s.loopback.Stop()
		}
		s.grpc.Stop()
		<-stopped
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	s.stopBg()
	s.background.Wait()
	s.closeConns()
}

// stopTriton stops Triton's API for the service, then the embedded Triton (after the calls in
// flight, at most its exit timeout).
func (s *Server) stopTriton() {
	if s.kserve != nil {
		s.kserve.Stop()
	}
	if s.embedded != nil {
		s.embedded.Stop()
	}
}

func (s *Server) closeConns() {
	for _, c := range s.conns {
		_ = c.Close()
	}
	if s.triton != nil {
		s.triton.Close()
	}
	s.stopTriton()
}
