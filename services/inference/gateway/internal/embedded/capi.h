// The part of Triton's in-process C API (tritonserver.h, API version 1.x) that the gateway
// calls, reached through dlopen/dlsym so that the gateway builds and runs without Triton's
// library where it talks to an external Triton over gRPC. Declarations are written here from
// Triton's documented API; only opaque handles and plain C types cross it.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct TRITONSERVER_Error TRITONSERVER_Error;
typedef struct TRITONSERVER_InferenceRequest TRITONSERVER_InferenceRequest;
typedef struct TRITONSERVER_InferenceResponse TRITONSERVER_InferenceResponse;
typedef struct TRITONSERVER_ResponseAllocator TRITONSERVER_ResponseAllocator;
typedef struct TRITONSERVER_Server TRITONSERVER_Server;
typedef struct TRITONSERVER_ServerOptions TRITONSERVER_ServerOptions;

// Enumerations, in the order tritonserver.h defines them.
enum { BT_TYPE_INVALID = 0 };                                  // TRITONSERVER_DataType
enum { BT_MEMORY_CPU = 0 };                                    // TRITONSERVER_MemoryType
enum { BT_LOG_INFO = 0, BT_LOG_WARN, BT_LOG_ERROR, BT_LOG_VERBOSE };
enum { BT_ERROR_UNKNOWN = 0, BT_ERROR_INTERNAL, BT_ERROR_NOT_FOUND, BT_ERROR_INVALID_ARG,
       BT_ERROR_UNAVAILABLE, BT_ERROR_UNSUPPORTED, BT_ERROR_ALREADY_EXISTS };
enum { BT_MODEL_CONTROL_EXPLICIT = 2 };                        // TRITONSERVER_ModelControlMode
enum { BT_RESPONSE_COMPLETE_FINAL = 1 };
enum { BT_REQUEST_RELEASE_ALL = 1 };

// Loads the library and resolves every symbol below; returns NULL, or a message (static
// storage) naming what failed.
const char* bt_load(const char* library_path);

uint32_t bt_api_version(uint32_t* major, uint32_t* minor);  // 0 on success

// Errors: code and message of err (which may be NULL: code -1), then deletes it.
int bt_error_code(TRITONSERVER_Error* err);
const char* bt_error_message(TRITONSERVER_Error* err);
void bt_error_delete(TRITONSERVER_Error* err);

TRITONSERVER_Error* bt_options_new(TRITONSERVER_ServerOptions** options);
TRITONSERVER_Error* bt_options_delete(TRITONSERVER_ServerOptions* options);
TRITONSERVER_Error* bt_options_set_model_repository(TRITONSERVER_ServerOptions* o, const char* path);
TRITONSERVER_Error* bt_options_set_backend_directory(TRITONSERVER_ServerOptions* o, const char* path);
TRITONSERVER_Error* bt_options_set_model_control_explicit(TRITONSERVER_ServerOptions* o);
TRITONSERVER_Error* bt_options_set_strict_model_config(TRITONSERVER_ServerOptions* o, bool strict);
TRITONSERVER_Error* bt_options_set_pinned_memory(TRITONSERVER_ServerOptions* o, uint64_t size);
TRITONSERVER_Error* bt_options_set_exit_timeout(TRITONSERVER_ServerOptions* o, unsigned int seconds);
TRITONSERVER_Error* bt_options_set_backend_config(TRITONSERVER_ServerOptions* o, const char* backend,
                                                  const char* setting, const char* value);
TRITONSERVER_Error* bt_options_set_log(TRITONSERVER_ServerOptions* o, bool info, bool warn, bool error,
                                       int verbose);
TRITONSERVER_Error* bt_options_set_metrics(TRITONSERVER_ServerOptions* o, bool on);

TRITONSERVER_Error* bt_server_new(TRITONSERVER_Server** server, TRITONSERVER_ServerOptions* o);
TRITONSERVER_Error* bt_server_delete(TRITONSERVER_Server* server);
TRITONSERVER_Error* bt_server_stop(TRITONSERVER_Server* server);
TRITONSERVER_Error* bt_server_is_ready(TRITONSERVER_Server* server, bool* ready);
TRITONSERVER_Error* bt_model_is_ready(TRITONSERVER_Server* server, const char* model, bool* ready);
TRITONSERVER_Error* bt_load_model(TRITONSERVER_Server* server, const char* model);
TRITONSERVER_Error* bt_unload_model(TRITONSERVER_Server* server, const char* model);

// One inference: a request whose outputs land in malloc'ed buffers (freed with the response),
// whose completion calls the Go function embeddedResponseComplete(response, key) and whose
// release calls embeddedRequestRelease(request, key).
TRITONSERVER_Error* bt_request_new(TRITONSERVER_InferenceRequest** request, TRITONSERVER_Server* server,
                                   const char* model, uintptr_t key);
TRITONSERVER_Error* bt_request_delete(TRITONSERVER_InferenceRequest* request);
TRITONSERVER_Error* bt_request_add_input(TRITONSERVER_InferenceRequest* request, const char* name,
                                         const char* datatype, const int64_t* shape, uint64_t dims,
                                         const void* data, size_t byte_size);
TRITONSERVER_Error* bt_request_add_output(TRITONSERVER_InferenceRequest* request, const char* name);
TRITONSERVER_Error* bt_request_set_timeout(TRITONSERVER_InferenceRequest* request, uint64_t us);
TRITONSERVER_Error* bt_infer_async(TRITONSERVER_Server* server, TRITONSERVER_InferenceRequest* request);

TRITONSERVER_Error* bt_response_error(TRITONSERVER_InferenceResponse* response);
TRITONSERVER_Error* bt_response_output_count(TRITONSERVER_InferenceResponse* response, uint32_t* count);
// Output index: its name and datatype (strings owned by the response), shape, data.
TRITONSERVER_Error* bt_response_output(TRITONSERVER_InferenceResponse* response, uint32_t index,
                                       const char** name, const char** datatype, const int64_t** shape,
                                       uint64_t* dims, const void** data, size_t* byte_size);
TRITONSERVER_Error* bt_response_delete(TRITONSERVER_InferenceResponse* response);
