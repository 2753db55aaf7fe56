// dlopen/dlsym bindings for capi.h; see there.
#include "capi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "_cgo_export.h"

typedef int DataType;
typedef int MemoryType;
typedef void (*ResponseFn)(TRITONSERVER_InferenceResponse*, uint32_t, void*);
typedef void (*ReleaseFn)(TRITONSERVER_InferenceRequest*, uint32_t, void*);
typedef TRITONSERVER_Error* (*AllocFn)(TRITONSERVER_ResponseAllocator*, const char*, size_t, MemoryType,
                                      int64_t, void*, void**, void**, MemoryType*, int64_t*);
typedef TRITONSERVER_Error* (*FreeFn)(TRITONSERVER_ResponseAllocator*, void*, void*, size_t, MemoryType,
                                     int64_t);

#define TS(name) TRITONSERVER_##name
#define API(ret, name, params) static ret(*p_##name) params;
#define APIS                                                                                         \
  API(TRITONSERVER_Error*, ApiVersion, (uint32_t*, uint32_t*))                                      \
  API(int, ErrorCode, (TRITONSERVER_Error*))                                                        \
  API(const char*, ErrorMessage, (TRITONSERVER_Error*))                                             \
  API(void, ErrorDelete, (TRITONSERVER_Error*))                                                     \
  API(TRITONSERVER_Error*, ErrorNew, (int, const char*))                                            \
  API(DataType, StringToDataType, (const char*))                                                    \
  API(const char*, DataTypeString, (DataType))                                                      \
  API(TRITONSERVER_Error*, ServerOptionsNew, (TRITONSERVER_ServerOptions**))                        \
  API(TRITONSERVER_Error*, ServerOptionsDelete, (TRITONSERVER_ServerOptions*))                      \
  API(TRITONSERVER_Error*, ServerOptionsSetModelRepositoryPath, (TRITONSERVER_ServerOptions*, const char*)) \
  API(TRITONSERVER_Error*, ServerOptionsSetBackendDirectory, (TRITONSERVER_ServerOptions*, const char*)) \
  API(TRITONSERVER_Error*, ServerOptionsSetModelControlMode, (TRITONSERVER_ServerOptions*, int))   \
  API(TRITONSERVER_Error*, ServerOptionsSetStrictModelConfig, (TRITONSERVER_ServerOptions*, bool)) \
  API(TRITONSERVER_Error*, ServerOptionsSetPinnedMemoryPoolByteSize, (TRITONSERVER_ServerOptions*, uint64_t)) \
  API(TRITONSERVER_Error*, ServerOptionsSetExitTimeout, (TRITONSERVER_ServerOptions*, unsigned int)) \
  API(TRITONSERVER_Error*, ServerOptionsSetBackendConfig,                                           \
      (TRITONSERVER_ServerOptions*, const char*, const char*, const char*))                         \
  API(TRITONSERVER_Error*, ServerOptionsSetLogInfo, (TRITONSERVER_ServerOptions*, bool))           \
  API(TRITONSERVER_Error*, ServerOptionsSetLogWarn, (TRITONSERVER_ServerOptions*, bool))           \
  API(TRITONSERVER_Error*, ServerOptionsSetLogError, (TRITONSERVER_ServerOptions*, bool))          \
  API(TRITONSERVER_Error*, ServerOptionsSetLogVerbose, (TRITONSERVER_ServerOptions*, int))         \
  API(TRITONSERVER_Error*, ServerOptionsSetMetrics, (TRITONSERVER_ServerOptions*, bool))           \
  API(TRITONSERVER_Error*, ServerOptionsSetGpuMetrics, (TRITONSERVER_ServerOptions*, bool))        \
  API(TRITONSERVER_Error*, ServerNew, (TRITONSERVER_Server**, TRITONSERVER_ServerOptions*))        \
  API(TRITONSERVER_Error*, ServerDelete, (TRITONSERVER_Server*))                                    \
  API(TRITONSERVER_Error*, ServerStop, (TRITONSERVER_Server*))                                      \
  API(TRITONSERVER_Error*, ServerIsReady, (TRITONSERVER_Server*, bool*))                            \
  API(TRITONSERVER_Error*, ServerModelIsReady, (TRITONSERVER_Server*, const char*, int64_t, bool*)) \
  API(TRITONSERVER_Error*, ServerLoadModel, (TRITONSERVER_Server*, const char*))                    \
  API(TRITONSERVER_Error*, ServerUnloadModel, (TRITONSERVER_Server*, const char*))                  \
  API(TRITONSERVER_Error*, ResponseAllocatorNew, (TRITONSERVER_ResponseAllocator**, AllocFn, FreeFn, void*)) \
  API(TRITONSERVER_Error*, InferenceRequestNew,                                                     \
      (TRITONSERVER_InferenceRequest**, TRITONSERVER_Server*, const char*, int64_t))                \
  API(TRITONSERVER_Error*, InferenceRequestDelete, (TRITONSERVER_InferenceRequest*))                \
  API(TRITONSERVER_Error*, InferenceRequestAddInput,                                                \
      (TRITONSERVER_InferenceRequest*, const char*, DataType, const int64_t*, uint64_t))            \
  API(TRITONSERVER_Error*, InferenceRequestAppendInputData,                                         \
      (TRITONSERVER_InferenceRequest*, const char*, const void*, size_t, MemoryType, int64_t))      \
  API(TRITONSERVER_Error*, InferenceRequestAddRequestedOutput, (TRITONSERVER_InferenceRequest*, const char*)) \
  API(TRITONSERVER_Error*, InferenceRequestSetTimeoutMicroseconds, (TRITONSERVER_InferenceRequest*, uint64_t)) \
  API(TRITONSERVER_Error*, InferenceRequestSetReleaseCallback,                                      \
      (TRITONSERVER_InferenceRequest*, ReleaseFn, void*))                                           \
  API(TRITONSERVER_Error*, InferenceRequestSetResponseCallback,                                     \
      (TRITONSERVER_InferenceRequest*, TRITONSERVER_ResponseAllocator*, void*, ResponseFn, void*))  \
  API(TRITONSERVER_Error*, ServerInferAsync, (TRITONSERVER_Server*, TRITONSERVER_InferenceRequest*, void*)) \
  API(TRITONSERVER_Error*, InferenceResponseError, (TRITONSERVER_InferenceResponse*))               \
  API(TRITONSERVER_Error*, InferenceResponseOutputCount, (TRITONSERVER_InferenceResponse*, uint32_t*)) \
  API(TRITONSERVER_Error*, InferenceResponseOutput,                                                 \
      (TRITONSERVER_InferenceResponse*, uint32_t, const char**, DataType*, const int64_t**, uint64_t*, \
       const void**, size_t*, MemoryType*, int64_t*, void**))                                       \
  API(TRITONSERVER_Error*, InferenceResponseDelete, (TRITONSERVER_InferenceResponse*))

APIS
#undef API

static TRITONSERVER_ResponseAllocator* allocator;

static TRITONSERVER_Error* alloc_output(TRITONSERVER_ResponseAllocator* a, const char* name, size_t size,
                                        MemoryType type, int64_t type_id, void* userp, void** buffer,
                                        void** buffer_userp, MemoryType* actual_type, int64_t* actual_id) {
  *buffer = size ? malloc(size) : NULL;
  *buffer_userp = NULL;
  *actual_type = BT_MEMORY_CPU;
  *actual_id = 0;
  if (size && *buffer == NULL) return p_ErrorNew(BT_ERROR_INTERNAL, "out of memory for an output tensor");
  return NULL;
}

static TRITONSERVER_Error* free_output(TRITONSERVER_ResponseAllocator* a, void* buffer, void* buffer_userp,
                                       size_t size, MemoryType type, int64_t type_id) {
  free(buffer);
  return NULL;
}

static void response_complete(TRITONSERVER_InferenceResponse* response, uint32_t flags, void* userp) {
  embeddedResponseComplete(response, flags, (uintptr_t)userp);
}

static void request_release(TRITONSERVER_InferenceRequest* request, uint32_t flags, void* userp) {
  embeddedRequestRelease(request, flags, (uintptr_t)userp);
}

static char load_error[512];

const char* bt_load(const char* library_path) {
  void* lib = dlopen(library_path, RTLD_NOW | RTLD_GLOBAL);
  if (lib == NULL) {
    snprintf(load_error, sizeof load_error, "cannot load Triton's library: %s", dlerror());
    return load_error;
  }
#define API(ret, name, params)                                                              \
  p_##name = (ret(*) params)dlsym(lib, "TRITONSERVER_" #name);                              \
  if (p_##name == NULL) {                                                                   \
    snprintf(load_error, sizeof load_error, "Triton's library lacks TRITONSERVER_%s", #name); \
    return load_error;                                                                      \
  }
  APIS
#undef API
  TRITONSERVER_Error* err = p_ResponseAllocatorNew(&allocator, alloc_output, free_output, NULL);
  if (err != NULL) {
    snprintf(load_error, sizeof load_error, "cannot create an output allocator: %s", p_ErrorMessage(err));
    p_ErrorDelete(err);
    return load_error;
  }
  return NULL;
}

uint32_t bt_api_version(uint32_t* major, uint32_t* minor) {
  TRITONSERVER_Error* err = p_ApiVersion(major, minor);
  if (err == NULL) return 0;
  p_ErrorDelete(err);
  return 1;
}

int bt_error_code(TRITONSERVER_Error* err) { return err == NULL ? -1 : p_ErrorCode(err); }
const char* bt_error_message(TRITONSERVER_Error* err) { return err == NULL ? "" : p_ErrorMessage(err); }
void bt_error_delete(TRITONSERVER_Error* err) { if (err != NULL) p_ErrorDelete(err); }

TRITONSERVER_Error* bt_options_new(TRITONSERVER_ServerOptions** o) { return p_ServerOptionsNew(o); }
TRITONSERVER_Error* bt_options_delete(TRITONSERVER_ServerOptions* o) { return p_ServerOptionsDelete(o); }
TRITONSERVER_Error* bt_options_set_model_repository(TRITONSERVER_ServerOptions* o, const char* path) {
  return p_ServerOptionsSetModelRepositoryPath(o, path);
}
TRITONSERVER_Error* bt_options_set_backend_directory(TRITONSERVER_ServerOptions* o, const char* path) {
  return p_ServerOptionsSetBackendDirectory(o, path);
}
TRITONSERVER_Error* bt_options_set_model_control_explicit(TRITONSERVER_ServerOptions* o) {
  return p_ServerOptionsSetModelControlMode(o, BT_MODEL_CONTROL_EXPLICIT);
}
TRITONSERVER_Error* bt_options_set_strict_model_config(TRITONSERVER_ServerOptions* o, bool strict) {
  return p_ServerOptionsSetStrictModelConfig(o, strict);
}
TRITONSERVER_Error* bt_options_set_pinned_memory(TRITONSERVER_ServerOptions* o, uint64_t size) {
  return p_ServerOptionsSetPinnedMemoryPoolByteSize(o, size);
}
TRITONSERVER_Error* bt_options_set_exit_timeout(TRITONSERVER_ServerOptions* o, unsigned int seconds) {
  return p_ServerOptionsSetExitTimeout(o, seconds);
}
TRITONSERVER_Error* bt_options_set_backend_config(TRITONSERVER_ServerOptions* o, const char* backend,
                                                  const char* setting, const char* value) {
  return p_ServerOptionsSetBackendConfig(o, backend, setting, value);
}
TRITONSERVER_Error* bt_options_set_log(TRITONSERVER_ServerOptions* o, bool info, bool warn, bool error,
                                       int verbose) {
  TRITONSERVER_Error* err = p_ServerOptionsSetLogInfo(o, info);
  if (err == NULL) err = p_ServerOptionsSetLogWarn(o, warn);
  if (err == NULL) err = p_ServerOptionsSetLogError(o, error);
  if (err == NULL) err = p_ServerOptionsSetLogVerbose(o, verbose);
  return err;
}
TRITONSERVER_Error* bt_options_set_metrics(TRITONSERVER_ServerOptions* o, bool on) {
  TRITONSERVER_Error* err = p_ServerOptionsSetMetrics(o, on);
  if (err == NULL) err = p_ServerOptionsSetGpuMetrics(o, false);
  return err;
}

TRITONSERVER_Error* bt_server_new(TRITONSERVER_Server** s, TRITONSERVER_ServerOptions* o) {
  return p_ServerNew(s, o);
}
TRITONSERVER_Error* bt_server_delete(TRITONSERVER_Server* s) { return p_ServerDelete(s); }
TRITONSERVER_Error* bt_server_stop(TRITONSERVER_Server* s) { return p_ServerStop(s); }
TRITONSERVER_Error* bt_server_is_ready(TRITONSERVER_Server* s, bool* ready) { return p_ServerIsReady(s, ready); }
TRITONSERVER_Error* bt_model_is_ready(TRITONSERVER_Server* s, const char* model, bool* ready) {
  return p_ServerModelIsReady(s, model, -1, ready);
}
TRITONSERVER_Error* bt_load_model(TRITONSERVER_Server* s, const char* model) { return p_ServerLoadModel(s, model); }
TRITONSERVER_Error* bt_unload_model(TRITONSERVER_Server* s, const char* model) {
  return p_ServerUnloadModel(s, model);
}

TRITONSERVER_Error* bt_request_new(TRITONSERVER_InferenceRequest** r, TRITONSERVER_Server* s, const char* model,
                                   uintptr_t key) {
  TRITONSERVER_Error* err = p_InferenceRequestNew(r, s, model, -1);
  if (err != NULL) return err;
  err = p_InferenceRequestSetReleaseCallback(*r, request_release, (void*)key);
  if (err == NULL) err = p_InferenceRequestSetResponseCallback(*r, allocator, NULL, response_complete, (void*)key);
  if (err != NULL) {
    p_InferenceRequestDelete(*r);
    *r = NULL;
  }
  return err;
}
TRITONSERVER_Error* bt_request_delete(TRITONSERVER_InferenceRequest* r) { return p_InferenceRequestDelete(r); }
TRITONSERVER_Error* bt_request_add_input(TRITONSERVER_InferenceRequest* r, const char* name,
                                         const char* datatype, const int64_t* shape, uint64_t dims,
                                         const void* data, size_t byte_size) {
  DataType dt = p_StringToDataType(datatype);
  if (dt == BT_TYPE_INVALID) return p_ErrorNew(BT_ERROR_INVALID_ARG, "unknown datatype");
  TRITONSERVER_Error* err = p_InferenceRequestAddInput(r, name, dt, shape, dims);
  if (err == NULL) err = p_InferenceRequestAppendInputData(r, name, data, byte_size, BT_MEMORY_CPU, 0);
  return err;
}
TRITONSERVER_Error* bt_request_add_output(TRITONSERVER_InferenceRequest* r, const char* name) {
  return p_InferenceRequestAddRequestedOutput(r, name);
}
TRITONSERVER_Error* bt_request_set_timeout(TRITONSERVER_InferenceRequest* r, uint64_t us) {
  return p_InferenceRequestSetTimeoutMicroseconds(r, us);
}
TRITONSERVER_Error* bt_infer_async(TRITONSERVER_Server* s, TRITONSERVER_InferenceRequest* r) {
  return p_ServerInferAsync(s, r, NULL);
}

TRITONSERVER_Error* bt_response_error(TRITONSERVER_InferenceResponse* r) { return p_InferenceResponseError(r); }
TRITONSERVER_Error* bt_response_output_count(TRITONSERVER_InferenceResponse* r, uint32_t* count) {
  return p_InferenceResponseOutputCount(r, count);
}
TRITONSERVER_Error* bt_response_output(TRITONSERVER_InferenceResponse* r, uint32_t index, const char** name,
                                       const char** datatype, const int64_t** shape, uint64_t* dims,
                                       const void** data, size_t* byte_size) {
  DataType dt;
  MemoryType mt;
  int64_t mt_id;
  void* userp;
  TRITONSERVER_Error* err =
      p_InferenceResponseOutput(r, index, name, &dt, shape, dims, data, byte_size, &mt, &mt_id, &userp);
  if (err == NULL) *datatype = p_DataTypeString(dt);
  return err;
}
TRITONSERVER_Error* bt_response_delete(TRITONSERVER_InferenceResponse* r) { return p_InferenceResponseDelete(r); }
