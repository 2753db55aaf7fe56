// Package embedded runs Triton Inference Server inside the gateway's process through Triton's
// in-process C API (libtritonserver, the library the tritonserver binary is built on), so that a
// Predict reaches the model without a second gRPC hop. The library is loaded at run time
// (dlopen): the gateway builds and runs without it when it talks to an external Triton.
package embedded

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "capi.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"unsafe"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/beamops/beamops/services/inference/gateway/internal/tensor"
)

// Options configure the embedded server; they are those the bundled tritonserver is started with.
type Options struct {
	Library          string      // path of libtritonserver.so
	ModelRepository  string      // the inference service's model repository
	BackendDirectory string      // holds python/ (libtriton_python.so and its stub)
	BackendConfig    [][3]string // backend, setting, value (e.g. python shm-region-prefix-name)
	ExitTimeoutS     uint        // how long Stop waits for requests in flight
	LogVerbose       int         // Triton's verbose log level (0: off)
}

// Server is one in-process Triton, with explicit model control and no model loaded at start.
type Server struct {
	server  *C.TRITONSERVER_Server
	mu      sync.RWMutex // Stop takes it exclusively: no call runs on a deleted server
	stopped bool
}

var (
	loadOnce sync.Once
	loadErr  error
)

// load opens the library once per process (Triton itself is process wide).
func load(library string) error {
	loadOnce.Do(func() {
		path := C.CString(library)
		defer C.free(unsafe.Pointer(path))
		if msg := C.bt_load(path); msg != nil {
			loadErr = errors.New(C.GoString(msg))
			return
		}
		var major, minor C.uint32_t
		if C.bt_api_version(&major, &minor) != 0 || major != 1 {
			loadErr = fmt.Errorf("Triton's library has API version %d.%d; the gateway needs 1.x", major, minor)
		}
	})
	return loadErr
}

// Start loads the library and starts Triton with o; it returns once Triton is up (its backends
// loaded). Models are loaded later with Load.
func Start(o Options) (*Server, error) {
	if err := load(o.Library); err != nil {
		return nil, err
	}
	var options *C.TRITONSERVER_ServerOptions
	if err := check(C.bt_options_new(&options)); err != nil {
		return nil, fmt.Errorf("Triton options: %w", err)
	}
	defer func() { _ = check(C.bt_options_delete(options)) }()
	repository, backends := C.CString(o.ModelRepository), C.CString(o.BackendDirectory)
	defer C.free(unsafe.Pointer(repository))
	defer C.free(unsafe.Pointer(backends))
	steps := []*C.TRITONSERVER_Error{
		C.bt_options_set_model_repository(options, repository),
		C.bt_options_set_backend_directory(options, backends),
		C.bt_options_set_model_control_explicit(options),
		C.bt_options_set_strict_model_config(options, true), // --disable-auto-complete-config
		C.bt_options_set_pinned_memory(options, 0),
		C.bt_options_set_exit_timeout(options, C.uint(o.ExitTimeoutS)),
		C.bt_options_set_log(options, true, true, true, C.int(o.LogVerbose)),
		C.bt_options_set_metrics(options, false),
	}
	for _, bc := range o.BackendConfig {
		backend, setting, value := C.CString(bc[0]), C.CString(bc[1]), C.CString(bc[2])
		steps = append(steps, C.bt_options_set_backend_config(options, backend, setting, value))
		C.free(unsafe.Pointer(backend))
		C.free(unsafe.Pointer(setting))
		C.free(unsafe.Pointer(value))
	}
	var first error
	for _, step := range steps {
		if err := check(step); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, fmt.Errorf("Triton options: %w", first)
	}
	s := &Server{}
	if err := check(C.bt_server_new(&s.server, options)); err != nil {
		return nil, fmt.Errorf("starting Triton: %w", err)
	}
	return s, nil
}

// Stop stops Triton (waiting at most ExitTimeoutS for requests in flight) and frees it.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	_ = check(C.bt_server_stop(s.server))
	_ = check(C.bt_server_delete(s.server))
}

var errStopped = status.Error(codes.Unavailable, "Triton is stopping")

// Ready says whether Triton is ready for inference.
func (s *Server) Ready() (bool, error) {
	var ready C.bool
	err := s.running(func() error { return check(C.bt_server_is_ready(s.server, &ready)) })
	return err == nil && bool(ready), err
}

// ModelReady says whether model (any version) is loaded and ready.
func (s *Server) ModelReady(model string) (bool, error) {
	var ready C.bool
	err := s.withModel(model, func(name *C.char) error { return check(C.bt_model_is_ready(s.server, name, &ready)) })
	return err == nil && bool(ready), err
}

// Load loads (or reloads) model from the repository; it returns once the model is ready.
func (s *Server) Load(model string) error {
	return s.withModel(model, func(name *C.char) error { return check(C.bt_load_model(s.server, name)) })
}

// Unload starts unloading model; it returns before the model is gone.
func (s *Server) Unload(model string) error {
	return s.withModel(model, func(name *C.char) error { return check(C.bt_unload_model(s.server, name)) })
}

// running runs f unless Triton is stopping (Stop waits for it to return).
func (s *Server) running(f func() error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopped {
		return errStopped
	}
	return f()
}

// withModel is running with model's name as a C string.
func (s *Server) withModel(model string, f func(name *C.char) error) error {
	name := C.CString(model)
	defer C.free(unsafe.Pointer(name))
	return s.running(func() error { return f(name) })
}

// call is one inference in flight: Triton calls back twice (response, request release) from its
// own threads; the second callback frees the handle.
type call struct {
	pinner  runtime.Pinner // the inputs' bytes, read by Triton until the request is released
	answer  chan answer
	pending atomic.Int32
	handle  cgo.Handle

	answered bool // Triton calls back for one request at a time
}

type answer struct {
	outputs []tensor.Tensor
	err     error
}

func (c *call) done() {
	if c.pending.Add(-1) == 0 {
		c.handle.Delete()
	}
}

// Infer runs inputs on model and returns Triton's outputs named in outputs (Triton's order and
// datatype strings; shapes and bytes copied into Go memory). Errors are gRPC statuses with the
// codes Triton's own gRPC front would answer. Cancelling ctx abandons the answer, not the call.
func (s *Server) Infer(ctx context.Context, model string, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, error) {
	c := &call{answer: make(chan answer, 1)}
	c.pending.Store(2)
	c.handle = cgo.NewHandle(c)
	if err := s.submit(c, model, inputs, outputs); err != nil {
		c.pinner.Unpin()
		c.handle.Delete()
		return nil, err
	}
	select {
	case a := <-c.answer:
		return a.outputs, a.err
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (s *Server) submit(c *call, model string, inputs []tensor.Tensor, outputs []string) error {
	return s.withModel(model, func(name *C.char) error {
		var request *C.TRITONSERVER_InferenceRequest
		if err := check(C.bt_request_new(&request, s.server, name, C.uintptr_t(c.handle))); err != nil {
			return err
		}
		if err := addTensors(c, request, inputs, outputs); err != nil {
			_ = check(C.bt_request_delete(request))
			return err
		}
		if err := check(C.bt_infer_async(s.server, request)); err != nil {
			_ = check(C.bt_request_delete(request)) // not submitted: no callback comes
			return err
		}
		return nil
	})
}

func addTensors(c *call, request *C.TRITONSERVER_InferenceRequest, inputs []tensor.Tensor, outputs []string) error {
	for i := range inputs {
		t := &inputs[i]
		name, datatype := C.CString(t.Name), C.CString(tensor.WireType(t.Dtype))
		var shape *C.int64_t
		if len(t.Shape) > 0 {
			shape = (*C.int64_t)(unsafe.Pointer(&t.Shape[0])) // copied by Triton
		}
		var data unsafe.Pointer
		if len(t.Data) > 0 {
			data = unsafe.Pointer(&t.Data[0])
			c.pinner.Pin(data)
		}
		err := check(C.bt_request_add_input(request, name, datatype, shape, C.uint64_t(len(t.Shape)), data,
			C.size_t(len(t.Data))))
		C.free(unsafe.Pointer(name))
		C.free(unsafe.Pointer(datatype))
		if err != nil {
			return err
		}
	}
	for _, output := range outputs {
		name := C.CString(output)
		err := check(C.bt_request_add_output(request, name))
		C.free(unsafe.Pointer(name))
		if err != nil {
			return err
		}
	}
	return nil
}

//export embeddedResponseComplete
func embeddedResponseComplete(response *C.TRITONSERVER_InferenceResponse, flags C.uint32_t, key C.uintptr_t) {
	c := cgo.Handle(key).Value().(*call)
	if response != nil {
		outputs, err := read(response)
		_ = check(C.bt_response_delete(response))
		if !c.answered { // a second response (decoupled models are not deployed): the first counts
			c.answered = true
			c.answer <- answer{outputs, err}
		}
	}
	if flags&C.BT_RESPONSE_COMPLETE_FINAL != 0 {
		if !c.answered {
			c.answered = true
			c.answer <- answer{err: status.Error(codes.Internal, "Triton sent no response")}
		}
		c.done()
	}
}

//export embeddedRequestRelease
func embeddedRequestRelease(request *C.TRITONSERVER_InferenceRequest, flags C.uint32_t, key C.uintptr_t) {
	c := cgo.Handle(key).Value().(*call)
	if flags&C.BT_REQUEST_RELEASE_ALL != 0 {
		_ = check(C.bt_request_delete(request))
		c.pinner.Unpin()
		c.done()
	}
}

// read copies a response's outputs into Go memory.
func read(response *C.TRITONSERVER_InferenceResponse) ([]tensor.Tensor, error) {
	if err := check(C.bt_response_error(response)); err != nil {
		return nil, err
	}
	var count C.uint32_t
	if err := check(C.bt_response_output_count(response, &count)); err != nil {
		return nil, err
	}
	outputs := make([]tensor.Tensor, count)
	for i := range outputs {
		var name, datatype *C.char
		var shape *C.int64_t
		var dims C.uint64_t
		var data unsafe.Pointer
		var size C.size_t
		if err := check(C.bt_response_output(response, C.uint32_t(i), &name, &datatype, &shape, &dims, &data, &size)); err != nil {
			return nil, err
		}
		dtype, ok := tensor.FromWire(C.GoString(datatype))
		if !ok {
			return nil, status.Error(codes.Internal, "output "+C.GoString(name)+" has datatype "+C.GoString(datatype))
		}
		t := tensor.Tensor{Name: C.GoString(name), Dtype: dtype, Shape: make([]int64, dims)}
		if dims > 0 {
			copy(t.Shape, unsafe.Slice((*int64)(unsafe.Pointer(shape)), dims))
		}
		t.Data = C.GoBytes(data, C.int(size))
		outputs[i] = t
	}
	return outputs, nil
}

// grpcCodes maps Triton's error codes as its gRPC front does.
var grpcCodes = map[C.int]codes.Code{
	C.BT_ERROR_UNKNOWN: codes.Unknown, C.BT_ERROR_INTERNAL: codes.Internal, C.BT_ERROR_NOT_FOUND: codes.NotFound,
	C.BT_ERROR_INVALID_ARG: codes.InvalidArgument, C.BT_ERROR_UNAVAILABLE: codes.Unavailable,
	C.BT_ERROR_UNSUPPORTED: codes.Unimplemented, C.BT_ERROR_ALREADY_EXISTS: codes.AlreadyExists,
}

// check turns a Triton error (nil: success) into a gRPC status error, and deletes it.
func check(err *C.TRITONSERVER_Error) error {
	if err == nil {
		return nil
	}
	defer C.bt_error_delete(err)
	code, ok := grpcCodes[C.bt_error_code(err)]
	if !ok {
		code = codes.Unknown
	}
	return status.Error(code, C.GoString(C.bt_error_message(err)))
}
