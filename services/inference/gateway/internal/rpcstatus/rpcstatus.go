// Package rpcstatus turns the gateway's errors into the gRPC status the Python service sends
// for the same failure (services/runtime/beamops/runtime/interceptors.py status_for): code,
// message, and grpc-status-details-bin = google.rpc.Status{code, message, details:
// [ErrorInfo{reason, domain "beamops.dev", metadata}, RequestInfo{request_id},
// BadRequest{field_violations: [{field, description: message}]} for INVALID_ARGUMENT with a
// field]}. It also makes request ids the way the Python service does.
package rpcstatus

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Domain is ErrorInfo.domain of every beamops error.
const Domain = "beamops.dev"

// RequestIDKey is the metadata key of the request id (request and trailer).
const RequestIDKey = "x-request-id"

// Error is a failure meant for the caller (beamops.runtime.errors.BeamopsError): a code, the
// reason (the Python class's reason, e.g. "INVALID_ARGUMENT"), the message as the caller sees
// it, the request field at fault (INVALID_ARGUMENT only) and ErrorInfo metadata.
type Error struct {
	Code     codes.Code
	Reason   string
	Message  string
	Field    string
	Metadata map[string]string
}

func (e *Error) Error() string { return e.Message }

// New is an error whose reason is the code's name (what every beamops error class does).
func New(code codes.Code, message string) *Error {
	return &Error{Code: code, Reason: ReasonOf(code), Message: message}
}

// InvalidArgument is errors.InvalidArgument(message, field=field, tensor=tensor).
func InvalidArgument(message, field, tensor string) *Error {
	return &Error{Code: codes.InvalidArgument, Reason: "INVALID_ARGUMENT", Message: message, Field: field,
		Metadata: map[string]string{"tensor": tensor}}
}

// InvalidField is errors.InvalidArgument(message, field=field) (no metadata).
func InvalidField(message, field string) *Error {
	return &Error{Code: codes.InvalidArgument, Reason: "INVALID_ARGUMENT", Message: message, Field: field}
}

// Internal is what status_for gives for an unexpected exception in method (its last path
// element, e.g. "Predict").
func Internal(method, requestID string) *Error {
	return New(codes.Internal, "internal error in "+method+"; an administrator can find it in the log "+
		"under request id "+requestID)
}

// ReasonOf is the name status_for uses for a code ("INVALID_ARGUMENT", ...).
func ReasonOf(code codes.Code) string {
	switch code {
	case codes.OK:
		return "OK"
	case codes.Canceled:
		return "CANCELLED"
	case codes.Unknown:
		return "UNKNOWN"
	case codes.InvalidArgument:
		return "INVALID_ARGUMENT"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.AlreadyExists:
		return "ALREADY_EXISTS"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case codes.FailedPrecondition:
		return "FAILED_PRECONDITION"
	case codes.Aborted:
		return "ABORTED"
	case codes.OutOfRange:
		return "OUT_OF_RANGE"
	case codes.Unimplemented:
		return "UNIMPLEMENTED"
	case codes.Internal:
		return "INTERNAL"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.DataLoss:
		return "DATA_LOSS"
	case codes.Unauthenticated:
		return "UNAUTHENTICATED"
	}
	return "UNKNOWN"
}

// MaxMessage is the longest message a status carries, in bytes: a status travels in the
// trailers (message and details, which hold it again), which gRPC caps at 8 KiB, so a longer
// message would turn the caller's answer into RESOURCE_EXHAUSTED. Longer ones are cut.
const MaxMessage = 1024

func capped(message string) string {
	if len(message) <= MaxMessage {
		return message
	}
	cut := MaxMessage
	for cut > 0 && !utf8.RuneStart(message[cut]) {
		cut--
	}
	return message[:cut] + " ..."
}

// Proto is the google.rpc.Status of status_for(exc, method, requestID).
func (e *Error) Proto(requestID string) *spb.Status {
	message := capped(e.Message)
	details := make([]*anypb.Any, 0, 3)
	details = append(details, mustPack(&errdetails.ErrorInfo{Reason: e.Reason, Domain: Domain, Metadata: e.Metadata}))
	details = append(details, mustPack(&errdetails.RequestInfo{RequestId: requestID}))
	if e.Code == codes.InvalidArgument && e.Field != "" {
		details = append(details, mustPack(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: e.Field, Description: message},
		}}))
	}
	return &spb.Status{Code: int32(e.Code), Message: message, Details: details}
}

// Err is the error a handler returns for e: gRPC sends its details as grpc-status-details-bin.
func (e *Error) Err(requestID string) error {
	return status.FromProto(e.Proto(requestID)).Err()
}

// FromStatus is the Error a caller should see for a status another beamops service returned
// (e.g. Authorize's UNAUTHENTICATED): code and message as they are, reason and metadata from
// its ErrorInfo when it has one (else the code's name). The request id is left out: Proto
// adds the caller's own.
func FromStatus(st *status.Status) *Error {
	e := &Error{Code: st.Code(), Reason: ReasonOf(st.Code()), Message: st.Message()}
	for _, d := range st.Proto().GetDetails() {
		var info errdetails.ErrorInfo
		if d.MessageIs(&info) && d.UnmarshalTo(&info) == nil {
			if info.Reason != "" {
				e.Reason = info.Reason
			}
			if len(info.Metadata) > 0 {
				e.Metadata = info.Metadata
			}
			break
		}
	}
	return e
}

func mustPack(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil { // only for messages that cannot be marshalled: never for these
		panic(err)
	}
	return a
}

// ---- request ids -------------------------------------------------------------------------

// Generated ids are 32 hex digits: a random prefix per process and a counter, like the
// Python service's (unique like a uuid4 without a random draw per call).
var (
	idPrefix  string
	idCounter atomic.Uint64
)

func init() {
	var b [13]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	idPrefix = hex.EncodeToString(b[:10])
	idCounter.Store(uint64(b[10])<<40 | uint64(b[11])<<32 | uint64(b[12])<<24)
}

// NewRequestID is a fresh 32-hex-digit request id.
func NewRequestID() string {
	n := (idCounter.Add(1) - 1) & 0xFFFFFFFFFFFF
	var buf [32]byte
	copy(buf[:20], idPrefix)
	var num [8]byte
	binary.BigEndian.PutUint64(num[:], n)
	hex.Encode(buf[20:], num[2:])
	return string(buf[:])
}

// ValidRequestID says whether id matches ^[A-Za-z0-9._-]{1,64}$.
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Last is the last value of key in md ("" when absent): what the Python service's
// metadata_value reads.
func Last(md metadata.MD, key string) string {
	values := md[key]
	if len(values) == 0 {
		return ""
	}
	return values[len(values)-1]
}

// RequestID is the caller's x-request-id when it is sane, else a fresh one.
func RequestID(md metadata.MD) string {
	if given := Last(md, RequestIDKey); ValidRequestID(given) {
		return given
	}
	return NewRequestID()
}
