// Command beamops-gateway is the compiled data plane of the beamops inference service: it
// serves InferenceService.Predict and PredictStream itself for deployments in the route table
// the service streams to it (GatewayService.WatchRoutes), calling Triton directly, and forwards
// every other call unchanged to the service. The service starts and supervises it.
//
//	BEAMOPS_GATEWAY_TOKEN=... beamops-gateway --listen 127.0.0.1:50055 \
//	    --service 127.0.0.1:50054 --triton 127.0.0.1:8001
//
// The token (for GatewayService calls) is BEAMOPS_GATEWAY_TOKEN when that is set, else the first
// line of standard input: the service passes it on stdin, so that no environment, the gateway's
// or that of the processes Triton starts (Python-backend stubs running model code), holds it. The
// variable, when used, is removed from the environment at once (children do not inherit it).
//
// It logs to stderr, one line per event; once it listens it logs
// "beamops-gateway: <time> listening on HOST:PORT ..." (the port actually bound, also with
// --listen HOST:0). SIGTERM or SIGINT: graceful stop (at most 5 s), exit 0. Exit 2: bad command
// line or no token; exit 1: cannot listen, or serving failed.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/beamops/beamops/services/inference/gateway/internal/embedded"
	"github.com/beamops/beamops/services/inference/gateway/internal/server"
)

// version is the beamops version (pyproject.toml), in the Open Inference Protocol's ServerMetadata.
const version = "0.1.0"

const (
	tokenEnv     = "BEAMOPS_GATEWAY_TOKEN"
	gracefulStop = 5 * time.Second
)

func parseFlags(args []string, procs *int, withParent *bool) (server.Config, error) {
	var cfg server.Config
	var inferTimeout, reportInterval float64
	fs := flag.NewFlagSet("beamops-gateway", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", "", "HOST:PORT to serve on (port 0: any free port)")
	fs.StringVar(&cfg.Service, "service", "", "HOST:PORT of the Python inference service")
	fs.StringVar(&cfg.Triton, "triton", "", "HOST:PORT of Triton's gRPC endpoint; with --triton-library, the loopback "+
		"HOST:PORT where the gateway serves the part of that API the service calls")
	var embed embedded.Options
	fs.StringVar(&embed.Library, "triton-library", "", "libtritonserver.so: run Triton inside the gateway's process "+
		"(no gRPC hop to it) instead of calling one at --triton")
	fs.StringVar(&embed.ModelRepository, "triton-repository", "", "with --triton-library: the model repository")
	fs.StringVar(&embed.BackendDirectory, "triton-backends", "", "with --triton-library: the backend directory")
	fs.Func("triton-backend-config", "with --triton-library: BACKEND,SETTING=VALUE (repeatable)", func(v string) error {
		backend, rest, ok1 := strings.Cut(v, ",")
		setting, value, ok2 := strings.Cut(rest, "=")
		if !ok1 || !ok2 || backend == "" || setting == "" {
			return errors.New("want BACKEND,SETTING=VALUE")
		}
		embed.BackendConfig = append(embed.BackendConfig, [3]string{backend, setting, value})
		return nil
	})
	fs.UintVar(&embed.ExitTimeoutS, "triton-exit-timeout", 10, "with --triton-library: seconds Triton waits for calls in flight when stopping")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", 64<<20, "largest request or response (larger request: RESOURCE_EXHAUSTED)")
	fs.Float64Var(&inferTimeout, "infer-timeout", 30, "timeout of each Triton call, seconds")
	fs.Float64Var(&reportInterval, "report-interval", 1, "ReportUsage period, seconds")
	fs.IntVar(&cfg.DriftSamplesPerS, "drift-samples-per-s", 200, "at most this many drift samples per deployment and second")
	fs.IntVar(&cfg.TritonConnections, "triton-connections", 2, "connections to Triton (calls are spread over them)")
	fs.IntVar(&cfg.CoalesceInFlight, "coalesce-in-flight", 1, "calls to one batching Triton model in flight at once; "+
		"requests arriving meanwhile are joined into one call (0: no coalescing, Triton's dynamic batcher alone)")
	fs.IntVar(procs, "procs", 0, "CPUs the gateway runs Go code on at once (GOMAXPROCS); 0: half of those available, "+
		"at least 1 (the gateway shares the host with Triton); the GOMAXPROCS variable, when set, wins")
	fs.StringVar(&cfg.HTTPListen, "http-listen", "", "HOST:PORT of the Open Inference Protocol's REST front (empty: none)")
	fs.StringVar(&cfg.LoopbackListen, "loopback-listen", "", "with TLS: 127.0.0.1:PORT where the same fronts are served in "+
		"plaintext, for the inference service alone (it passes its own Predict calls to the gateway there)")
	fs.BoolVar(&cfg.OpenMetadata, "open-metadata", false, "answer the Open Inference Protocol's setup calls (metadata, "+
		"config, repository index, statistics) without credentials, as stock CMSSW makes them")
	fs.BoolVar(&cfg.ConfigChecksums, "config-checksums", false, "ModelConfig names each artifact's sha256 as Triton's "+
		"checksum repository agent does (CMSSW SONIC then demands the same entries in its local config.pbtxt)")
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert", "", "PEM certificate chain: serve callers TLS (with --tls-key)")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.TLS.ClientCAFile, "tls-client-ca", "", "PEM CA: callers must present a certificate it signed (mutual TLS)")
	fs.BoolVar(withParent, "exit-with-parent", false, "stop (SIGTERM) when the process that started the gateway dies "+
		"(Linux; the inference service sets it)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if embed.Library != "" {
		if embed.ModelRepository == "" || embed.BackendDirectory == "" {
			return cfg, errors.New("--triton-library needs --triton-repository and --triton-backends")
		}
		if !loopback(cfg.Triton) {
			return cfg, errors.New("with --triton-library, --triton must be a loopback HOST:PORT (Triton's API is for the service only)")
		}
		cfg.Embedded = &embed
	}
	cfg.InferTimeout = time.Duration(inferTimeout * float64(time.Second))
	cfg.ReportInterval = time.Duration(reportInterval * float64(time.Second))
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case cfg.Listen == "" || cfg.Service == "" || cfg.Triton == "":
		return cfg, errors.New("--listen, --service and --triton are required")
	case cfg.MaxMessageBytes <= 0:
		return cfg, errors.New("--max-message-bytes must be positive")
	case cfg.InferTimeout <= 0 || cfg.ReportInterval <= 0:
		return cfg, errors.New("--infer-timeout and --report-interval must be positive")
	case cfg.DriftSamplesPerS < 0 || cfg.CoalesceInFlight < 0 || cfg.TritonConnections < 1 || *procs < 0:
		return cfg, errors.New("--drift-samples-per-s, --coalesce-in-flight and --procs must be >= 0, --triton-connections >= 1")
	}
	return cfg, nil
}

// readToken is BEAMOPS_GATEWAY_TOKEN (then unset, so that nothing the gateway starts inherits it)
// or else the first line of stdin ("" when there is none).
func readToken() string {
	if token, ok := os.LookupEnv(tokenEnv); ok {
		_ = os.Unsetenv(tokenEnv)
		return strings.TrimSpace(token)
	}
	line, _ := bufio.NewReaderSize(os.Stdin, 4096).ReadString('\n')
	return strings.TrimSpace(line)
}

// loopback says whether HOST:PORT names this machine's loopback interface.
func loopback(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("beamops-gateway: ")
	procs, withParent := 0, false
	cfg, err := parseFlags(os.Args[1:], &procs, &withParent)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "beamops-gateway: %v\n", err)
		os.Exit(2)
	}
	cfg.Token = readToken()
	cfg.Version = version
	if cfg.Token == "" {
		fmt.Fprintf(os.Stderr, "beamops-gateway: no token for GatewayService calls: set %s or pass it on stdin\n", tokenEnv)
		os.Exit(2)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		if procs == 0 {
			procs = max(1, runtime.GOMAXPROCS(0)/2)
		}
		runtime.GOMAXPROCS(procs)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	if withParent {
		if err := exitWithParent(); err != nil {
			log.Printf("--exit-with-parent: %v", err)
			os.Exit(1)
		}
	}
	srv, err := server.Start(cfg)
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
	transport := "plaintext"
	if cfg.TLS.Enabled() {
		transport = "TLS"
		if cfg.TLS.ClientCAFile != "" {
			transport = "mutual TLS"
		}
	}
	where := "Triton " + cfg.Triton
	if cfg.Embedded != nil {
		where = "Triton in this process, its API for the service on " + cfg.Triton
	}
	rest := ""
	if a := srv.HTTPAddr(); a != nil {
		rest = ", REST on " + a.String()
	}
	log.Printf("listening on %s, %s%s (service %s, %s, %d CPUs)", srv.Addr(), transport, rest, cfg.Service, where, runtime.GOMAXPROCS(0))
	select {
	case sig := <-signals:
		log.Printf("%v: stopping (graceful, at most %v)", sig, gracefulStop)
		srv.Stop(gracefulStop)
		log.Printf("stopped")
	case err := <-srv.Served():
		log.Printf("serving stopped: %v", err)
		os.Exit(1)
	}
}
