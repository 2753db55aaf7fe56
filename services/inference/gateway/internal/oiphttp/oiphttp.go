// Package oiphttp serves the Open Inference Protocol (KServe v2) over REST, as Triton's HTTP
// front does (what tritonclient.http and curl call), on the gateway's oip.Front: every endpoint
// reads its HTTP request into Triton's message, calls the Front method of the same name and
// writes the answer. Nothing here decides anything about models or inference.
package oiphttp

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/oip"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// DefaultMaxBodyBytes is the body limit when Handler is given none (maxBodyBytes <= 0).
const DefaultMaxBodyBytes = 64 << 20

// Header names of the protocol.
const (
	RequestIDHeader    = "X-Request-ID"
	HeaderLengthHeader = "Inference-Header-Content-Length" // the binary tensor data extension
)

type server struct {
	front   *oip.Front
	maxBody int64
}

// Handler serves the protocol's /v2 endpoints on f. Request bodies (after decompression) are
// limited to maxBodyBytes (413 beyond). Every answer carries X-Request-ID: the caller's when it
// is a valid id, else a fresh one; errors are {"error": "..."} with the HTTP status of the
// Front's gRPC code.
func Handler(f *oip.Front, maxBodyBytes int64) http.Handler {
	if maxBodyBytes <= 0 {
		maxBodyBytes = DefaultMaxBodyBytes
	}
	s := &server{front: f, maxBody: maxBodyBytes}
	mux := http.NewServeMux()
	handle := func(pattern, method string, h func(http.ResponseWriter, *http.Request, oip.Call)) {
		mux.Handle(pattern, endpoint(method, h))
	}
	handle("/v2/health/live", http.MethodGet, s.live)
	handle("/v2/health/ready", http.MethodGet, s.ready)
	handle("/v2", http.MethodGet, s.serverMetadata)
	handle("/v2/models/stats", http.MethodGet, s.statistics)
	for _, model := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		handle(model, http.MethodGet, s.modelMetadata)
		handle(model+"/ready", http.MethodGet, s.modelReady)
		handle(model+"/config", http.MethodGet, s.modelConfig)
		handle(model+"/stats", http.MethodGet, s.statistics)
		handle(model+"/infer", http.MethodPost, s.infer)
	}
	handle("/v2/repository/index", http.MethodPost, s.repositoryIndex)
	handle("/v2/repository/models/{name}/load", http.MethodPost, s.load)
	handle("/v2/repository/models/{name}/unload", http.MethodPost, s.unload)
	mux.Handle("/", endpoint("", func(w http.ResponseWriter, r *http.Request, _ oip.Call) {
		writeError(w, http.StatusNotFound, "no endpoint "+r.URL.Path+" in the Open Inference Protocol as beamops serves it")
	}))
	return mux
}

// endpoint sets the request id, refuses other methods than method ("": any; GET admits HEAD)
// and calls h.
func endpoint(method string, h func(http.ResponseWriter, *http.Request, oip.Call)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := callOf(r)
		w.Header().Set(RequestIDHeader, c.RequestID)
		if method != "" && r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s: use %s", r.Method, r.URL.Path, method))
			return
		}
		h(w, r, c)
	})
}

func callOf(r *http.Request) oip.Call {
	c := oip.Call{RequestID: r.Header.Get(RequestIDHeader)}
	if v := r.Header.Values("Authorization"); len(v) > 0 {
		c.Authorization = v[len(v)-1] // as the gRPC front reads metadata: the last value
	}
	if r.TLS != nil {
		c.ClientSubject = oip.VerifiedSubject(*r.TLS)
	}
	if !rpcstatus.ValidRequestID(c.RequestID) {
		c.RequestID = rpcstatus.NewRequestID()
	}
	return c
}

// ---- the endpoints other than infer ------------------------------------------------------

func (s *server) live(w http.ResponseWriter, r *http.Request, c oip.Call) {
	resp, e := s.front.ServerLive(r.Context(), c, &tritonpb.ServerLiveRequest{})
	if e != nil {
		fail(w, e)
		return
	}
	writeEmpty(w, okOr(resp.GetLive(), http.StatusServiceUnavailable))
}

func (s *server) ready(w http.ResponseWriter, r *http.Request, c oip.Call) {
	resp, e := s.front.ServerReady(r.Context(), c, &tritonpb.ServerReadyRequest{})
	if e != nil {
		fail(w, e)
		return
	}
	writeEmpty(w, okOr(resp.GetReady(), http.StatusServiceUnavailable))
}

func (s *server) serverMetadata(w http.ResponseWriter, r *http.Request, c oip.Call) {
	resp, e := s.front.ServerMetadata(r.Context(), c, &tritonpb.ServerMetadataRequest{})
	if e != nil {
		fail(w, e)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Name       string   `json:"name"`
		Version    string   `json:"version"`
		Extensions []string `json:"extensions"`
	}{resp.GetName(), resp.GetVersion(), nonNil(resp.GetExtensions())})
}

type tensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

func (s *server) modelMetadata(w http.ResponseWriter, r *http.Request, c oip.Call) {
	resp, e := s.front.ModelMetadata(r.Context(), c, &tritonpb.ModelMetadataRequest{Name: r.PathValue("name"), Version: r.PathValue("version")})
	if e != nil {
		fail(w, e)
		return
	}
	meta := func(list []*tritonpb.ModelMetadataResponse_TensorMetadata) []tensorMetadata {
		out := make([]tensorMetadata, len(list))
		for i, t := range list {
			out[i] = tensorMetadata{t.GetName(), t.GetDatatype(), nonNil(t.GetShape())}
		}
		return out
	}
	writeJSON(w, http.StatusOK, struct {
		Name     string           `json:"name"`
		Versions []string         `json:"versions"`
		Platform string           `json:"platform"`
		Inputs   []tensorMetadata `json:"inputs"`
		Outputs  []tensorMetadata `json:"outputs"`
	}{resp.GetName(), nonNil(resp.GetVersions()), resp.GetPlatform(), meta(resp.GetInputs()), meta(resp.GetOutputs())})
}

// modelReady is 200 or, as Triton answers a model that is not ready, 400.
func (s *server) modelReady(w http.ResponseWriter, r *http.Request, c oip.Call) {
	resp, e := s.front.ModelReady(r.Context(), c, &tritonpb.ModelReadyRequest{Name: r.PathValue("name"), Version: r.PathValue("version")})
	if e != nil {
		fail(w, e)
		return
	}
	writeEmpty(w, okOr(resp.GetReady(), http.StatusBadRequest))
}

func (s *server) modelConfig(w http.ResponseWriter, r *http.Request, c oip.Call) {
	resp, e := s.front.ModelConfig(r.Context(), c, &tritonpb.ModelConfigRequest{Name: r.PathValue("name"), Version: r.PathValue("version")})
	if e != nil {
		fail(w, e)
		return
	}
	writeRaw(w, http.StatusOK, "application/json", appendMessage(nil, resp.GetConfig().ProtoReflect(), false))
}

// statistics is /v2/models/stats (every model) and /v2/models/{name}[/versions/{v}]/stats.
func (s *server) statistics(w http.ResponseWriter, r *http.Request, c oip.Call) {
	resp, e := s.front.ModelStatistics(r.Context(), c, &tritonpb.ModelStatisticsRequest{Name: r.PathValue("name"), Version: r.PathValue("version")})
	if e != nil {
		fail(w, e)
		return
	}
	writeRaw(w, http.StatusOK, "application/json", appendMessage(nil, resp.ProtoReflect(), true))
}

type modelIndex struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   string `json:"state"`
	Reason  string `json:"reason"`
}

func (s *server) repositoryIndex(w http.ResponseWriter, r *http.Request, c oip.Call) {
	body, herr := s.readBody(w, r)
	if herr != nil {
		writeError(w, herr.status, herr.msg)
		return
	}
	var req struct {
		Ready bool `json:"ready"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, jsonMessage(err))
			return
		}
	}
	resp, e := s.front.RepositoryIndex(r.Context(), c, &tritonpb.RepositoryIndexRequest{Ready: req.Ready})
	if e != nil {
		fail(w, e)
		return
	}
	out := make([]modelIndex, len(resp.GetModels()))
	for i, m := range resp.GetModels() {
		out[i] = modelIndex{m.GetName(), m.GetVersion(), m.GetState(), m.GetReason()}
	}
	writeJSON(w, http.StatusOK, out)
}

// load and unload deploy and undeploy (the Front's RepositoryModelLoad/Unload); the body's
// optional "parameters" are Triton's: {"parameters": {"config": "...", "version": "1.2"}}.
func (s *server) load(w http.ResponseWriter, r *http.Request, c oip.Call) {
	s.repositoryCall(w, r, func(name string, params map[string]*tritonpb.ModelRepositoryParameter) *rpcstatus.Error {
		_, e := s.front.RepositoryModelLoad(r.Context(), c, &tritonpb.RepositoryModelLoadRequest{ModelName: name, Parameters: params})
		return e
	})
}

func (s *server) unload(w http.ResponseWriter, r *http.Request, c oip.Call) {
	s.repositoryCall(w, r, func(name string, params map[string]*tritonpb.ModelRepositoryParameter) *rpcstatus.Error {
		_, e := s.front.RepositoryModelUnload(r.Context(), c, &tritonpb.RepositoryModelUnloadRequest{ModelName: name, Parameters: params})
		return e
	})
}

// repositoryCall reads a load or unload body and answers what call does with it: an empty 200,
// or the error.
func (s *server) repositoryCall(w http.ResponseWriter, r *http.Request,
	call func(name string, params map[string]*tritonpb.ModelRepositoryParameter) *rpcstatus.Error) {
	params, herr := s.repositoryParameters(w, r)
	if herr != nil {
		writeError(w, herr.status, herr.msg)
		return
	}
	if e := call(r.PathValue("name"), params); e != nil {
		fail(w, e)
		return
	}
	writeEmpty(w, http.StatusOK)
}

// repositoryParameters reads a load or unload body: strings, integers and booleans.
func (s *server) repositoryParameters(w http.ResponseWriter, r *http.Request) (map[string]*tritonpb.ModelRepositoryParameter, *httpError) {
	body, herr := s.readBody(w, r)
	if herr != nil || len(bytes.TrimSpace(body)) == 0 {
		return nil, herr
	}
	var req struct {
		Parameters map[string]any `json:"parameters"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return nil, &httpError{http.StatusBadRequest, jsonMessage(err)}
	}
	out := make(map[string]*tritonpb.ModelRepositoryParameter, len(req.Parameters))
	for key, v := range req.Parameters {
		p := &tritonpb.ModelRepositoryParameter{}
		switch v := v.(type) {
		case string:
			p.ParameterChoice = &tritonpb.ModelRepositoryParameter_StringParam{StringParam: v}
		case bool:
			p.ParameterChoice = &tritonpb.ModelRepositoryParameter_BoolParam{BoolParam: v}
		case json.Number:
			n, err := v.Int64()
			if err != nil {
				return nil, &httpError{http.StatusBadRequest, "parameter " + strconv.Quote(key) + " must be a whole number"}
			}
			p.ParameterChoice = &tritonpb.ModelRepositoryParameter_Int64Param{Int64Param: n}
		default:
			return nil, &httpError{http.StatusBadRequest, "parameter " + strconv.Quote(key) + " must be a string, a number or a boolean"}
		}
		out[key] = p
	}
	return out, nil
}

// ---- request bodies ----------------------------------------------------------------------

// httpError is a failure found here, before the Front is called.
type httpError struct {
	status int
	msg    string
}

func badRequest(format string, args ...any) *httpError {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// readBody is the body, decompressed per Content-Encoding (gzip, deflate), within maxBody
// before and after decompression.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpError) {
	tooLarge := &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", s.maxBody)}
	limited := http.MaxBytesReader(w, r.Body, s.maxBody)
	var in io.Reader = limited
	encoding := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch encoding {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(limited)
		if err != nil {
			return nil, readError(err, tooLarge, encoding)
		}
		in = zr
	case "deflate":
		// HTTP's deflate is zlib-wrapped (tritonclient's zlib.compress); some send it raw.
		br := bufio.NewReader(limited)
		head, _ := br.Peek(2)
		if len(head) == 2 && head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, readError(err, tooLarge, encoding)
			}
			in = zr
		} else {
			in = flate.NewReader(br)
		}
	default:
		return nil, badRequest("Content-Encoding %q is not supported (gzip and deflate are)", encoding)
	}
	var buf bytes.Buffer
	if encoding == "" && r.ContentLength > 0 && r.ContentLength <= s.maxBody {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(io.LimitReader(in, s.maxBody+1)); err != nil {
		return nil, readError(err, tooLarge, encoding)
	}
	if int64(buf.Len()) > s.maxBody {
		tooLarge.msg += " (decompressed)"
		return nil, tooLarge
	}
	return buf.Bytes(), nil
}

func readError(err error, tooLarge *httpError, encoding string) *httpError {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return tooLarge
	}
	if encoding != "" && encoding != "identity" {
		return badRequest("the request body is not valid %s data: %v", encoding, err)
	}
	return badRequest("reading the request body: %v", err)
}

// jsonMessage says what is wrong with a JSON body without naming Go types.
func jsonMessage(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("the request JSON is malformed at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("the request JSON must be an object (got a JSON %s)", typ.Value)
		}
		return fmt.Sprintf("request field %q: a JSON %s is not allowed there", typ.Field, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the request JSON ends early"
	}
	return "the request JSON is malformed"
}

// ---- answers -----------------------------------------------------------------------------

// httpStatus is the HTTP status of a gRPC code, as Triton's HTTP front maps its errors.
func httpStatus(code codes.Code) int {
	switch code {
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unimplemented:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

// fail writes the Front's error; an unexpected one says no more than "internal error" (the
// request id is in X-Request-ID).
func fail(w http.ResponseWriter, e *rpcstatus.Error) {
	status := httpStatus(e.Code)
	msg := e.Message
	if status == http.StatusInternalServerError {
		msg = "internal error"
	}
	writeError(w, status, msg)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	body := []byte(`{"error":"internal error"}`)
	if err := enc.Encode(v); err == nil { // it fails only for values that cannot be encoded: never these
		body = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	} else {
		status = http.StatusInternalServerError
	}
	writeRaw(w, status, "application/json", body)
}

func writeRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeEmpty(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

func okOr(ok bool, otherwise int) int {
	if ok {
		return http.StatusOK
	}
	return otherwise
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
