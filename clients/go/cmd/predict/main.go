// Command predict is an example beamops client in Go: it resolves an alias, lists deployments,
// sends a float32 tensor to Predict, and prints the outputs and the parameters version that
// answered as one JSON line on stdout.
//
//	predict --deployment jet-tagger --shape 2,4 --values 1,2,3,4,5,6,7,8
//	echo "1 2 3 4" | predict --model jet-tagger --alias production --shape 1,4
//
// Connection: --inference-address / BEAMOPS_INFERENCE_ADDRESS (default 127.0.0.1:50054),
// --registry-address / BEAMOPS_REGISTRY_ADDRESS (default 127.0.0.1:50051), --token /
// BEAMOPS_TOKEN (sent as "authorization: Bearer <token>"), --ca-file PEM (turns TLS on).
//
// Exit codes: 0 ok, 1 other error, 2 bad usage, 3 NOT_FOUND, 4 UNAUTHENTICATED or
// PERMISSION_DENIED, 5 INVALID_ARGUMENT, 6 FAILED_PRECONDITION, 7 UNAVAILABLE after retries,
// 8 DEADLINE_EXCEEDED.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	commonv1 "github.com/beamops/beamops/clients/go/gen/beamops/common/v1"
	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"
	registryv1 "github.com/beamops/beamops/clients/go/gen/beamops/registry/v1"
)

const maxAttempts = 5

type options struct {
	inferenceAddress, registryAddress, token, caFile string
	deployment, model, alias, input, values          string
	shape                                            []int64
	timeout                                          time.Duration
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("predict", flag.ContinueOnError)
	fs.StringVar(&o.inferenceAddress, "inference-address", envOr("BEAMOPS_INFERENCE_ADDRESS", "127.0.0.1:50054"), "inference service host:port")
	fs.StringVar(&o.registryAddress, "registry-address", envOr("BEAMOPS_REGISTRY_ADDRESS", "127.0.0.1:50051"), "registry service host:port")
	fs.StringVar(&o.token, "token", os.Getenv("BEAMOPS_TOKEN"), "bearer token (default $BEAMOPS_TOKEN)")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM file of the CA that signed the servers' certificates: turns TLS on")
	fs.StringVar(&o.deployment, "deployment", "", "deployment name to call")
	fs.StringVar(&o.model, "model", "", "registry model name (instead of --deployment)")
	fs.StringVar(&o.alias, "alias", "", "alias of --model to resolve and predict with, e.g. production")
	fs.StringVar(&o.input, "input", "x", "input tensor name")
	shape := fs.String("shape", "", "input shape, e.g. 2,4 (required)")
	fs.StringVar(&o.values, "values", "", "comma-separated float values in row-major order (default: read from stdin)")
	timeoutS := fs.Float64("timeout", 10, "deadline of each call, in seconds")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	if (o.deployment == "") == (o.model == "") {
		return nil, usageError{"give exactly one of --deployment and --model"}
	}
	if o.alias != "" && o.model == "" {
		return nil, usageError{"--alias needs --model"}
	}
	if *shape == "" {
		return nil, usageError{"--shape is required, e.g. --shape 2,4"}
	}
	for _, d := range splitFields(*shape) {
		dim, err := strconv.ParseInt(d, 10, 64)
		if err != nil || dim < 0 {
			return nil, usageError{fmt.Sprintf("--shape: %q is not a non-negative integer", d)}
		}
		o.shape = append(o.shape, dim)
	}
	if *timeoutS <= 0 {
		return nil, usageError{"--timeout must be positive"}
	}
	o.timeout = time.Duration(*timeoutS * float64(time.Second))
	return o, nil
}

func splitFields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == 'x'
	})
}

func parseValues(text string, expected int) ([]float32, error) {
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	values := make([]float32, 0, len(fields))
	for _, f := range fields {
		v, err := strconv.ParseFloat(f, 32)
		if err != nil {
			return nil, usageError{fmt.Sprintf("%q is not a number", f)}
		}
		values = append(values, float32(v))
	}
	if len(values) != expected {
		return nil, usageError{fmt.Sprintf("shape holds %d values but %d were given", expected, len(values))}
	}
	return values, nil
}

// callError is a failed RPC, with the RPC's name for the message.
type callError struct {
	rpc string
	st  *status.Status
}

func (e callError) Error() string {
	return fmt.Sprintf("%s failed with %s: %s", e.rpc, codeName(e.st.Code()), e.st.Message())
}

func codeName(c codes.Code) string { return strings.ToUpper(toSnake(c.String())) }

// toSnake turns "NotFound" into "Not_Found" (codes.Code.String() is CamelCase).
func toSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// call runs one RPC with the token, a deadline on every attempt, and UNAVAILABLE retried with
// exponential backoff and jitter.
func call[T any](ctx context.Context, o *options, rpc string, invoke func(context.Context) (T, error)) (T, error) {
	if o.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+o.token)
	}
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		attemptCtx, cancel := context.WithTimeout(ctx, o.timeout)
		response, err := invoke(attemptCtx)
		cancel()
		if err == nil {
			return response, nil
		}
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || attempt == maxAttempts {
			var zero T
			return zero, callError{rpc, st}
		}
		wait := time.Duration(float64(backoff) * (0.5 + rand.Float64()/2))
		fmt.Fprintf(os.Stderr, "%s: UNAVAILABLE (%s), attempt %d/%d, retrying in %d ms\n",
			rpc, st.Message(), attempt, maxAttempts, wait.Milliseconds())
		time.Sleep(wait)
		backoff = min(backoff*2, 5*time.Second)
	}
}

func dial(address string, o *options) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, usageError{fmt.Sprintf("cannot read CA file %s: %v", o.caFile, err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageError{fmt.Sprintf("no PEM certificate in %s", o.caFile)}
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return grpc.NewClient(address, grpc.WithTransportCredentials(creds))
}

// jsonTensor is how an output tensor is printed.
type jsonTensor struct {
	Dtype  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Values []any   `json:"values"`
}

// jsonFloat prints float32 values with the fewest digits that read back as the same float32,
// and non-finite values as strings (JSON has no NaN).
type jsonFloat struct {
	v    float64
	bits int
}

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	switch {
	case math.IsNaN(f.v):
		return []byte(`"NaN"`), nil
	case math.IsInf(f.v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(f.v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return []byte(strconv.FormatFloat(f.v, 'g', -1, f.bits)), nil
}

// decode reads the raw little-endian bytes of a tensor.
func decode(t *commonv1.Tensor) []any {
	raw := t.GetRawData()
	le := binary.LittleEndian
	var out []any
	switch t.GetDtype() {
	case commonv1.DataType_DATA_TYPE_FLOAT32:
		for i := 0; i+4 <= len(raw); i += 4 {
			out = append(out, jsonFloat{float64(math.Float32frombits(le.Uint32(raw[i:]))), 32})
		}
	case commonv1.DataType_DATA_TYPE_FLOAT64:
		for i := 0; i+8 <= len(raw); i += 8 {
			out = append(out, jsonFloat{math.Float64frombits(le.Uint64(raw[i:])), 64})
		}
	case commonv1.DataType_DATA_TYPE_INT8:
		for _, b := range raw {
			out = append(out, int8(b))
		}
	case commonv1.DataType_DATA_TYPE_UINT8:
		for _, b := range raw {
			out = append(out, b)
		}
	case commonv1.DataType_DATA_TYPE_BOOL:
		for _, b := range raw {
			out = append(out, b != 0)
		}
	case commonv1.DataType_DATA_TYPE_INT16:
		for i := 0; i+2 <= len(raw); i += 2 {
			out = append(out, int16(le.Uint16(raw[i:])))
		}
	case commonv1.DataType_DATA_TYPE_UINT16:
		for i := 0; i+2 <= len(raw); i += 2 {
			out = append(out, le.Uint16(raw[i:]))
		}
	case commonv1.DataType_DATA_TYPE_INT32:
		for i := 0; i+4 <= len(raw); i += 4 {
			out = append(out, int32(le.Uint32(raw[i:])))
		}
	case commonv1.DataType_DATA_TYPE_UINT32:
		for i := 0; i+4 <= len(raw); i += 4 {
			out = append(out, le.Uint32(raw[i:]))
		}
	case commonv1.DataType_DATA_TYPE_INT64:
		for i := 0; i+8 <= len(raw); i += 8 {
			out = append(out, int64(le.Uint64(raw[i:])))
		}
	case commonv1.DataType_DATA_TYPE_UINT64:
		for i := 0; i+8 <= len(raw); i += 8 {
			out = append(out, le.Uint64(raw[i:]))
		}
	default:
		return nil // FLOAT16, BYTES: not decoded by this example
	}
	if out == nil {
		out = []any{}
	}
	return out
}

func run(o *options) error {
	count := 1
	for _, d := range o.shape {
		count *= int(d)
	}
	text := o.values
	if text == "" {
		stdin, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		text = string(stdin)
	}
	values, err := parseValues(text, count)
	if err != nil {
		return err
	}
	ctx := context.Background()

	inferenceConn, err := dial(o.inferenceAddress, o)
	if err != nil {
		return err
	}
	defer inferenceConn.Close()
	inference := inferencev1.NewInferenceServiceClient(inferenceConn)

	// 1. Which version does the alias point at? (registry)
	if o.alias != "" {
		registryConn, err := dial(o.registryAddress, o)
		if err != nil {
			return err
		}
		defer registryConn.Close()
		registry := registryv1.NewRegistryServiceClient(registryConn)
		resolved, err := call(ctx, o, "RegistryService.ResolveAlias", func(c context.Context) (*registryv1.ResolveAliasResponse, error) {
			return registry.ResolveAlias(c, &registryv1.ResolveAliasRequest{Model: o.model, Alias: o.alias})
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "alias %s@%s -> parameters %s\n", o.model, o.alias, resolved.GetParameters().GetVersion())
	}

	// 2. What is deployed? (every page)
	list := &inferencev1.ListDeploymentsRequest{Model: o.model}
	for {
		page, err := call(ctx, o, "InferenceService.ListDeployments", func(c context.Context) (*inferencev1.ListDeploymentsResponse, error) {
			return inference.ListDeployments(c, list)
		})
		if err != nil {
			return err
		}
		for _, d := range page.GetDeployments() {
			fmt.Fprintf(os.Stderr, "deployment %s: %s, serving %s %s\n", d.GetName(), d.GetState(),
				d.GetParameters().GetModel(), d.GetParameters().GetVersion())
		}
		if list.PageToken = page.GetNextPageToken(); list.PageToken == "" {
			break
		}
	}

	// 3. Predict: one float32 tensor, raw little-endian bytes in row-major order.
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	request := &inferencev1.PredictRequest{
		Inputs: []*commonv1.Tensor{{Name: o.input, Dtype: commonv1.DataType_DATA_TYPE_FLOAT32, Shape: o.shape, RawData: raw}},
	}
	if o.deployment != "" {
		request.Route = &inferencev1.PredictRequest_Deployment{Deployment: o.deployment}
	} else {
		selector := &inferencev1.ModelSelector{Model: o.model}
		if o.alias != "" {
			selector.Selector = &inferencev1.ModelSelector_Alias{Alias: o.alias}
		}
		request.Route = &inferencev1.PredictRequest_Model{Model: selector}
	}
	response, err := call(ctx, o, "InferenceService.Predict", func(c context.Context) (*inferencev1.PredictResponse, error) {
		return inference.Predict(c, request)
	})
	if err != nil {
		return err
	}

	outputs := map[string]jsonTensor{}
	for _, t := range response.GetOutputs() {
		shape := t.GetShape()
		if shape == nil {
			shape = []int64{}
		}
		outputs[t.GetName()] = jsonTensor{
			Dtype:  strings.TrimPrefix(t.GetDtype().String(), "DATA_TYPE_"),
			Shape:  shape,
			Values: decode(t),
		}
	}
	line, err := json.Marshal(map[string]any{
		"deployment":         response.GetDeployment(),
		"model":              response.GetParameters().GetModel(),
		"parameters_version": response.GetParameters().GetVersion(),
		"outputs":            outputs,
	})
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	return nil
}

// exitCode reports err on stderr and returns the exit code for it.
func exitCode(err error) int {
	var usage usageError
	if errors.As(err, &usage) {
		fmt.Fprintf(os.Stderr, "error: %s\n(predict --help for help)\n", usage.msg)
		return 2
	}
	var failed callError
	if !errors.As(err, &failed) {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "error: %v\n", failed)
	switch failed.st.Code() {
	case codes.NotFound:
		return 3
	case codes.Unauthenticated:
		fmt.Fprintln(os.Stderr, "hint: pass a valid token with --token or BEAMOPS_TOKEN")
		return 4
	case codes.PermissionDenied:
		fmt.Fprintln(os.Stderr, "hint: this token's role may not make this call")
		return 4
	case codes.InvalidArgument:
		fmt.Fprintln(os.Stderr, "hint: the request was rejected as invalid; check --input, --shape and --values against the deployment's signature")
		return 5
	case codes.FailedPrecondition:
		return 6
	case codes.Unavailable:
		fmt.Fprintf(os.Stderr, "hint: still unavailable after %d attempts\n", maxAttempts)
		return 7
	case codes.DeadlineExceeded:
		return 8
	case codes.Unimplemented:
		fmt.Fprintf(os.Stderr, "hint: the server does not implement %s (an older or unfinished service version)\n", failed.rpc)
		return 1
	default:
		return 1
	}
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err == nil {
		err = run(o)
	}
	if err != nil {
		os.Exit(exitCode(err))
	}
}
