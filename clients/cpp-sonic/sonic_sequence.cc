// sonic_sequence: the calls CMSSW SONIC (HeterogeneousCore/SonicTriton, through Triton's C++ gRPC
// client) makes to a Triton server, in SONIC's order, over one channel authenticated by a TLS
// client certificate only (no metadata, no headers):
//
//   1. ServerMetadata                      (the server's name)
//   2. RepositoryIndex                     (server discovery: the model must be listed)
//   3. ModelConfig                         (max_batch_size; the batch must not exceed it when > 0;
//                                           the checksum agent's entries of the version asked for
//                                           must equal the local ones, --checksum)
//   4. ModelMetadata                       (input and output names, datatypes, shapes)
//   5. ModelInfer, asynchronously          (CompletionQueue, as Triton's AsyncInfer; the input
//                                           in raw_input_contents, every output requested)
//   6. ModelStatistics                     (the first entry of model_stats, as SONIC reads it)
//
//   sonic_sequence --address HOST:PORT --ca CA.pem --cert CLIENT.pem --key CLIENT.key
//                  --model NAME [--version V] --batch N --input-raw FILE [--features K]
//                  [--checksum V/FILE=VALUE ...] [--timeout SECONDS]
//
// --checksum: an entry of the local config.pbtxt's "checksum" repository agent (as SONIC reads
// it); entries of the version asked for that differ from the server's fail the run.
//
// FILE holds batch * features little-endian float32 values, row after row; without --features,
// features = (FILE's size / 4) / batch. The input is sent as FP32 of shape [batch, features].
// Prints one JSON object on stdout:
//   {"server": ..., "max_batch_size": n, "inputs": [names], "outputs": {name: {"datatype": ...,
//    "shape": [...], "data": [flat numbers]}}, "model_version": ..., "success_count": n}
// Outputs of FP32, FP64, INT64 and INT32 are decoded; others are left out (a note on stderr).
// Exit codes: 0 ok; 1 a call failed ("<Method>: <gRPC status code>: <message>" on stderr) or its
// answer does not do; 2 bad command line or unreadable files.
#include <grpcpp/grpcpp.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "grpc_service.grpc.pb.h"
#include "model_config.pb.h"

namespace {

const char* kUsage =
    "usage: sonic_sequence --address HOST:PORT --ca CA.pem --cert CLIENT.pem --key CLIENT.key\n"
    "                      --model NAME [--version V] --batch N --input-raw FILE [--features K]\n"
    "                      [--checksum V/FILE=VALUE ...] [--timeout SECONDS]\n"
    "FILE: batch * features little-endian float32 values (sent as FP32 [batch, features]).\n";

struct Options {
  std::string address, ca, cert, key, model, version, input_raw;
  std::vector<std::pair<std::string, std::string>> checksums;  // the local checksum agent's entries
  long long batch = 0;
  long long features = 0;  // 0: from the file's size (set in main)
  double timeout_s = 30.0;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A failed call or an answer that does not do: "<Method>: <what>" on stderr, exit 1.
struct CallError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

long long to_integer(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0) throw UsageError(flag + " takes an integer, not '" + text + "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  bool have_batch = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc) throw UsageError(flag + " needs a value");
    std::string value = argv[++i];
    if (flag == "--address") o.address = value;
    else if (flag == "--ca") o.ca = value;
    else if (flag == "--cert") o.cert = value;
    else if (flag == "--key") o.key = value;
    else if (flag == "--model") o.model = value;
    else if (flag == "--version") o.version = value;
    else if (flag == "--input-raw") o.input_raw = value;
    else if (flag == "--checksum") {
      auto eq = value.find('=');
      if (eq == std::string::npos || eq == 0) throw UsageError("--checksum takes VERSION/FILE=VALUE");
      o.checksums.emplace_back(value.substr(0, eq), value.substr(eq + 1));
    }
    else if (flag == "--batch") { o.batch = to_integer(flag, value); have_batch = true; }
    else if (flag == "--features") {
      o.features = to_integer(flag, value);
      if (o.features < 1) throw UsageError("--features must be at least 1");
    }
    else if (flag == "--timeout") {
      char* end = nullptr;
      o.timeout_s = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(o.timeout_s > 0)) throw UsageError("--timeout takes seconds > 0");
    } else {
      throw UsageError("unknown option " + flag);
    }
  }
  for (auto [name, v] : {std::pair<const char*, const std::string*>{"--address", &o.address},
                         {"--ca", &o.ca}, {"--cert", &o.cert}, {"--key", &o.key},
                         {"--model", &o.model}, {"--input-raw", &o.input_raw}}) {
    if (v->empty()) throw UsageError(std::string(name) + " is required");
  }
  if (!have_batch) throw UsageError("--batch is required");
  if (o.batch < 1) throw UsageError("--batch must be at least 1");
  return o;
}

std::string read_file(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(flag + ": cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const char* code_name(grpc::StatusCode code) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  int c = static_cast<int>(code);
  return c >= 0 && c < static_cast<int>(sizeof(names) / sizeof(names[0])) ? names[c] : "UNKNOWN";
}

void check(const char* method, const grpc::Status& status) {
  if (!status.ok()) {
    throw CallError(std::string(method) + ": " + code_name(status.error_code()) + ": " + status.error_message());
  }
}

// --- JSON output ---------------------------------------------------------------------------------

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string number(double v, int digits) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

template <typename T>
std::vector<T> decode(const std::string& bytes) {  // little-endian host, as Triton's client assumes
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

template <typename T>
std::vector<T> from_repeated(const google::protobuf::RepeatedField<T>& field) {
  return std::vector<T>(field.begin(), field.end());
}

// The values of output `index` as JSON numbers, or false (datatype not decoded here).
bool output_data(const inference::ModelInferResponse& response, int index, int64_t elements, std::string* json) {
  const auto& output = response.outputs(index);
  const std::string& dt = output.datatype();
  bool raw = index < response.raw_output_contents_size();
  const std::string empty;
  const std::string& bytes = raw ? response.raw_output_contents(index) : empty;
  const auto& contents = output.contents();
  std::vector<std::string> values;
  size_t width = 0;
  if (dt == "FP32") {
    width = 4;
    for (float v : raw ? decode<float>(bytes) : from_repeated(contents.fp32_contents())) values.push_back(number(v, 9));
  } else if (dt == "FP64") {
    width = 8;
    for (double v : raw ? decode<double>(bytes) : from_repeated(contents.fp64_contents())) values.push_back(number(v, 17));
  } else if (dt == "INT64") {
    width = 8;
    for (int64_t v : raw ? decode<int64_t>(bytes) : from_repeated(contents.int64_contents())) values.push_back(std::to_string(v));
  } else if (dt == "INT32") {
    width = 4;
    for (int32_t v : raw ? decode<int32_t>(bytes) : from_repeated(contents.int_contents())) values.push_back(std::to_string(v));
  } else {
    return false;
  }
  if (raw && bytes.size() != static_cast<size_t>(elements) * width) {
    throw CallError("ModelInfer: output " + output.name() + " holds " + std::to_string(bytes.size()) +
                    " bytes, its shape says " + std::to_string(elements * static_cast<int64_t>(width)));
  }
  if (static_cast<int64_t>(values.size()) != elements) {
    throw CallError("ModelInfer: output " + output.name() + " holds " + std::to_string(values.size()) +
                    " values, its shape says " + std::to_string(elements));
  }
  *json = "[";
  for (size_t i = 0; i < values.size(); ++i) *json += (i ? ", " : "") + values[i];
  *json += "]";
  return true;
}

// --- the calls -----------------------------------------------------------------------------------

class Sequence {
 public:
  Sequence(const Options& o, std::shared_ptr<grpc::Channel> channel)
      : o_(o), stub_(inference::GRPCInferenceService::NewStub(channel)) {}

  int run(const std::string& input) {
    std::string json = "{";

    // 1. ServerMetadata.
    inference::ServerMetadataResponse server;
    {
      grpc::ClientContext ctx;
      deadline(&ctx);
      check("ServerMetadata", stub_->ServerMetadata(&ctx, inference::ServerMetadataRequest(), &server));
    }
    json += "\"server\": " + quote(server.name());

    // 2. RepositoryIndex: SONIC's server discovery lists every model of every server.
    {
      inference::RepositoryIndexResponse index;
      grpc::ClientContext ctx;
      deadline(&ctx);
      check("RepositoryIndex", stub_->RepositoryIndex(&ctx, inference::RepositoryIndexRequest(), &index));
      bool listed = false;
      std::string names;
      for (const auto& model : index.models()) {
        listed = listed || model.name() == o_.model;
        names += (names.empty() ? "" : ", ") + model.name();
      }
      if (!listed) {
        throw CallError("RepositoryIndex: model '" + o_.model + "' is not in the repository index (it lists: " +
                        (names.empty() ? "nothing" : names) + ")");
      }
    }

    // 3. ModelConfig: max_batch_size, checksums.
    int64_t max_batch_size = 0;
    {
      inference::ModelConfigRequest request;
      request.set_name(o_.model);
      request.set_version(o_.version);
      inference::ModelConfigResponse config;
      grpc::ClientContext ctx;
      deadline(&ctx);
      check("ModelConfig", stub_->ModelConfig(&ctx, request, &config));
      max_batch_size = config.config().max_batch_size();
      if (max_batch_size > 0 && o_.batch > max_batch_size) {
        throw CallError("ModelConfig: batch " + std::to_string(o_.batch) + " exceeds the model's max_batch_size " +
                        std::to_string(max_batch_size));
      }
      if (max_batch_size == 0 && o_.batch != 1) {
        throw CallError("ModelConfig: the model does not batch (max_batch_size 0): --batch must be 1");
      }
      check_checksums(config.config());
    }
    json += ", \"max_batch_size\": " + std::to_string(max_batch_size);

    // 4. ModelMetadata: tensors' names, datatypes and shapes (first dim -1 = batch when batching).
    inference::ModelMetadataResponse meta;
    {
      inference::ModelMetadataRequest request;
      request.set_name(o_.model);
      request.set_version(o_.version);
      grpc::ClientContext ctx;
      deadline(&ctx);
      check("ModelMetadata", stub_->ModelMetadata(&ctx, request, &meta));
    }
    if (meta.inputs_size() != 1) {
      throw CallError("ModelMetadata: the model has " + std::to_string(meta.inputs_size()) +
                      " inputs; this program sends one");
    }
    const auto& in = meta.inputs(0);
    if (in.datatype() != "FP32") {
      throw CallError("ModelMetadata: input " + in.name() + " is " + in.datatype() + "; this program sends FP32");
    }
    if (max_batch_size > 0 && (in.shape_size() == 0 || in.shape(0) != -1)) {
      throw CallError("ModelMetadata: input " + in.name() + " has no batch dimension (-1) first, though "
                      "max_batch_size is " + std::to_string(max_batch_size));
    }
    json += ", \"inputs\": [";
    for (int i = 0; i < meta.inputs_size(); ++i) json += (i ? ", " : "") + quote(meta.inputs(i).name());
    json += "]";

    // 5. ModelInfer, asynchronously.
    inference::ModelInferRequest request;
    request.set_model_name(o_.model);
    request.set_model_version(o_.version);
    auto* tensor = request.add_inputs();
    tensor->set_name(in.name());
    tensor->set_datatype("FP32");
    tensor->add_shape(o_.batch);
    tensor->add_shape(o_.features);
    request.add_raw_input_contents()->assign(input);
    for (const auto& out : meta.outputs()) request.add_outputs()->set_name(out.name());
    inference::ModelInferResponse response = infer_async(request);

    json += ", \"outputs\": {";
    for (int i = 0; i < response.outputs_size(); ++i) {
      const auto& out = response.outputs(i);
      int64_t elements = 1;
      std::string shape = "[";
      for (int d = 0; d < out.shape_size(); ++d) {
        elements *= out.shape(d);
        shape += (d ? ", " : "") + std::to_string(out.shape(d));
      }
      shape += "]";
      std::string data;
      if (!output_data(response, i, elements, &data)) {
        std::cerr << "note: output " << out.name() << " is " << out.datatype() << ", not decoded here: left out\n";
        continue;
      }
      if (json.back() != '{') json += ", ";
      json += quote(out.name()) + ": {\"datatype\": " + quote(out.datatype()) + ", \"shape\": " + shape +
              ", \"data\": " + data + "}";
    }
    json += "}, \"model_version\": " + quote(response.model_version());

    // 6. ModelStatistics: SONIC reads model_stats(0).
    {
      inference::ModelStatisticsRequest request;
      request.set_name(o_.model);
      request.set_version(o_.version);
      inference::ModelStatisticsResponse stats;
      grpc::ClientContext ctx;
      deadline(&ctx);
      check("ModelStatistics", stub_->ModelStatistics(&ctx, request, &stats));
      if (stats.model_stats_size() == 0) throw CallError("ModelStatistics: the answer holds no model_stats");
      const auto& entry = stats.model_stats(0);
      json += ", \"success_count\": " + std::to_string(entry.inference_stats().success().count());
    }
    json += "}";
    std::cout << json << std::endl;
    return 0;
  }

 private:
  // As SONIC's TritonClient: the entries of the "checksum" repository agent whose key starts with
  // "<version>/", local (--checksum) against the server's; any that differ (or that one side
  // lacks) fail the run.
  void check_checksums(const inference::ModelConfig& remote) const {
    const std::string prefix = o_.version + "/";
    std::map<std::string, std::array<std::string, 2>> sums;
    for (const auto& [key, value] : o_.checksums) {
      if (key.compare(0, prefix.size(), prefix) == 0) sums[key][0] = value;
    }
    for (const auto& agent : remote.model_repository_agents().agents()) {
      if (agent.name() != "checksum") continue;
      for (const auto& [key, value] : agent.parameters()) {
        if (key.compare(0, prefix.size(), prefix) == 0) sums[key][1] = value;
      }
    }
    std::string incorrect;
    for (const auto& [key, pair] : sums) {
      if (pair[0] != pair[1]) incorrect += (incorrect.empty() ? "" : ", ") + key;
    }
    if (!incorrect.empty()) {
      throw CallError("ModelConfig: the following files have incorrect checksums on the remote server: " + incorrect);
    }
  }

  void deadline(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::microseconds(static_cast<int64_t>(o_.timeout_s * 1e6)));
  }

  // As Triton's InferenceServerGrpcClient::AsyncInfer: the call is started on a completion
  // queue that a worker thread drains, and its callback hands the answer back.
  inference::ModelInferResponse infer_async(const inference::ModelInferRequest& request) {
    struct Pending {
      grpc::ClientContext ctx;
      grpc::Status status;
      inference::ModelInferResponse response;
      std::unique_ptr<grpc::ClientAsyncResponseReader<inference::ModelInferResponse>> reader;
      std::promise<void> done;
    };
    grpc::CompletionQueue cq;
    std::thread worker([&cq] {
      void* tag = nullptr;
      bool ok = false;
      while (cq.Next(&tag, &ok)) {
        auto* pending = static_cast<Pending*>(tag);
        if (!ok) pending->status = grpc::Status(grpc::StatusCode::INTERNAL, "the completion queue failed the call");
        pending->done.set_value();  // the callback
      }
    });
    Pending pending;
    deadline(&pending.ctx);
    pending.reader = stub_->PrepareAsyncModelInfer(&pending.ctx, request, &cq);
    pending.reader->StartCall();
    pending.reader->Finish(&pending.response, &pending.status, &pending);
    pending.done.get_future().wait();
    cq.Shutdown();
    worker.join();
    check("ModelInfer", pending.status);
    return std::move(pending.response);
  }

  const Options& o_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string input;
  grpc::SslCredentialsOptions tls;
  try {
    o = parse(argc, argv);
    tls.pem_root_certs = read_file("--ca", o.ca);
    tls.pem_cert_chain = read_file("--cert", o.cert);
    tls.pem_private_key = read_file("--key", o.key);
    input = read_file("--input-raw", o.input_raw);
    size_t row_bytes = static_cast<size_t>(o.batch) * sizeof(float);
    if (o.features == 0) {
      if (input.empty() || input.size() % row_bytes != 0) {
        throw UsageError("--input-raw holds " + std::to_string(input.size()) + " bytes: not a whole number of " +
                         std::to_string(o.batch) + " rows of float32");
      }
      o.features = static_cast<long long>(input.size() / row_bytes);
    } else if (input.size() != row_bytes * static_cast<size_t>(o.features)) {
      throw UsageError("--input-raw holds " + std::to_string(input.size()) + " bytes, not batch * features * 4 = " +
                       std::to_string(row_bytes * static_cast<size_t>(o.features)));
    }
  } catch (const UsageError& e) {
    std::cerr << "sonic_sequence: " << e.what() << "\n" << kUsage;
    return 2;
  }
  // As Triton's client: one channel, messages up to INT32_MAX both ways.
  grpc::ChannelArguments arguments;
  arguments.SetMaxSendMessageSize(INT32_MAX);
  arguments.SetMaxReceiveMessageSize(INT32_MAX);
  auto channel = grpc::CreateCustomChannel(o.address, grpc::SslCredentials(tls), arguments);
  try {
    return Sequence(o, channel).run(input);
  } catch (const CallError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
