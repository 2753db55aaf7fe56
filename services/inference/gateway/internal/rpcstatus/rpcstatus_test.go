package rpcstatus

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// testdata/status.json: what the Python service's status_for sends (make_status.py).
func TestStatusMatchesPythonStatusFor(t *testing.T) {
	raw, err := os.ReadFile("testdata/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var py map[string]struct {
		Code       int32  `json:"code"`
		Message    string `json:"message"`
		DetailsBin string `json:"details_bin"`
	}
	if err := json.Unmarshal(raw, &py); err != nil {
		t.Fatal(err)
	}
	mine := map[string]*Error{
		"invalid_argument":    InvalidArgument("input 'x' is missing", "inputs", "x"),
		"invalid_field":       InvalidField("request_id is required", "request_id"),
		"unavailable":         New(codes.Unavailable, "Triton is not reachable (running the model); retry shortly"),
		"failed_precondition": New(codes.FailedPrecondition, "Triton failed running the model: boom"),
		"internal":            Internal("Predict", "req-1"),
	}
	for name, e := range mine {
		want, ok := py[name]
		if !ok {
			t.Fatalf("no Python case %s", name)
		}
		bin, _ := base64.StdEncoding.DecodeString(want.DetailsBin)
		var wantSt spb.Status
		if err := proto.Unmarshal(bin, &wantSt); err != nil {
			t.Fatal(err)
		}
		got := e.Proto("req-1")
		if !proto.Equal(got, &wantSt) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, &wantSt)
		}
		// Byte for byte too (one map entry at most: the encoding is deterministic).
		gotBin, _ := proto.MarshalOptions{Deterministic: true}.Marshal(got)
		if !bytes.Equal(gotBin, bin) {
			t.Errorf("%s: grpc-status-details-bin differs from Python's", name)
		}
		if got.Code != want.Code || got.Message != want.Message {
			t.Errorf("%s: %d %q", name, got.Code, got.Message)
		}
	}
}

func TestErrCarriesDetailsThroughGRPCStatus(t *testing.T) {
	err := InvalidArgument("input 'x' is given twice", "inputs[1].name", "x").Err("abc")
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || st.Message() != "input 'x' is given twice" {
		t.Fatal(st)
	}
	var info *errdetails.ErrorInfo
	var req *errdetails.RequestInfo
	var bad *errdetails.BadRequest
	for _, d := range st.Details() {
		switch v := d.(type) {
		case *errdetails.ErrorInfo:
			info = v
		case *errdetails.RequestInfo:
			req = v
		case *errdetails.BadRequest:
			bad = v
		}
	}
	if info == nil || info.Reason != "INVALID_ARGUMENT" || info.Domain != "beamops.dev" || info.Metadata["tensor"] != "x" {
		t.Errorf("ErrorInfo %v", info)
	}
	if req == nil || req.RequestId != "abc" {
		t.Errorf("RequestInfo %v", req)
	}
	if bad == nil || len(bad.FieldViolations) != 1 || bad.FieldViolations[0].Field != "inputs[1].name" ||
		bad.FieldViolations[0].Description != "input 'x' is given twice" {
		t.Errorf("BadRequest %v", bad)
	}
	// No BadRequest without a field, nor for other codes.
	for _, e := range []*Error{InvalidArgument("m", "", "x"), New(codes.Unavailable, "m")} {
		for _, d := range status.Convert(e.Err("r")).Details() {
			if _, ok := d.(*errdetails.BadRequest); ok {
				t.Errorf("%v has a BadRequest", e)
			}
		}
	}
}

func TestFromStatusKeepsReasonAndMetadata(t *testing.T) {
	py := (&Error{Code: codes.Unauthenticated, Reason: "UNAUTHENTICATED", Message: "the token is unknown or has been revoked",
		Metadata: map[string]string{"k": "v"}}).Proto("python-id")
	e := FromStatus(status.FromProto(py))
	if e.Code != codes.Unauthenticated || e.Reason != "UNAUTHENTICATED" || e.Message != py.Message || e.Metadata["k"] != "v" {
		t.Fatalf("%+v", e)
	}
	// The caller's request id replaces the service's.
	var req errdetails.RequestInfo
	if err := e.Proto("mine").Details[1].UnmarshalTo(&req); err != nil || req.RequestId != "mine" {
		t.Fatal(req.RequestId, err)
	}
	// A status without details: reason from the code.
	if e := FromStatus(status.New(codes.PermissionDenied, "no")); e.Reason != "PERMISSION_DENIED" {
		t.Fatal(e.Reason)
	}
}

func TestRequestIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewRequestID()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	for id, ok := range map[string]bool{"abc": true, "A.b_c-9": true, strings.Repeat("a", 64): true,
		strings.Repeat("a", 65): false, "": false, "a b": false, "é": false, "a/b": false} {
		if ValidRequestID(id) != ok {
			t.Errorf("ValidRequestID(%q) != %v", id, ok)
		}
	}
	md := metadata.Pairs("x-request-id", "first", "x-request-id", "last-one")
	if RequestID(md) != "last-one" {
		t.Error("the last value is the one used")
	}
	if got := RequestID(metadata.Pairs("x-request-id", "bad id")); len(got) != 32 {
		t.Error("a bad id is replaced by a fresh one")
	}
}

func TestLongMessagesAreCutToFitTheTrailers(t *testing.T) {
	long := strings.Repeat("é", 3000) // 6000 bytes, two per rune
	st := InvalidField(long, "inputs[0].shape").Proto("rid")
	if len(st.Message) > MaxMessage+4 || !strings.HasSuffix(st.Message, " ...") || !utf8.ValidString(st.Message) {
		t.Fatalf("message of %d bytes: %q...", len(st.Message), st.Message[:20])
	}
	raw, err := proto.Marshal(st)
	if err != nil || len(raw) > 4096 {
		t.Fatalf("details of %d bytes (%v)", len(raw), err)
	}
	if short := New(codes.NotFound, "no deployment named \"x\"").Proto("rid"); short.Message != "no deployment named \"x\"" {
		t.Fatalf("a short message changed: %q", short.Message)
	}
}
