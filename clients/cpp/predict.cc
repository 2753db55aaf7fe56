// Example beamops client in C++: resolve an alias, list deployments, send a float32 tensor to
// Predict, print the outputs and the parameters version that answered as one JSON line.
//
//   predict --deployment jet-tagger --shape 2,4 --values 1,2,3,4,5,6,7,8
//   echo "1 2 3 4" | predict --model jet-tagger --alias production --shape 1,4
//
// Connection: --inference-address / BEAMOPS_INFERENCE_ADDRESS (default 127.0.0.1:50054),
// --registry-address / BEAMOPS_REGISTRY_ADDRESS (default 127.0.0.1:50051), --token /
// BEAMOPS_TOKEN (sent as "authorization: Bearer <token>"), --ca-file PEM (turns TLS on).
// Exit codes: 0 ok, 1 other error, 2 bad usage, 3 NOT_FOUND, 4 UNAUTHENTICATED or
// PERMISSION_DENIED, 5 INVALID_ARGUMENT, 6 FAILED_PRECONDITION, 7 UNAVAILABLE after retries,
// 8 DEADLINE_EXCEEDED.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "beamops/common/v1/tensor.pb.h"
#include "beamops/inference/v1/inference_service.grpc.pb.h"
#include "beamops/registry/v1/registry_service.grpc.pb.h"

namespace common = beamops::common::v1;
namespace inference = beamops::inference::v1;
namespace registry = beamops::registry::v1;

namespace {

constexpr int kMaxAttempts = 5;

struct Options {
  std::string inference_address = "127.0.0.1:50054";
  std::string registry_address = "127.0.0.1:50051";
  std::string token;
  std::string ca_file;
  std::string deployment;
  std::string model;
  std::string alias;
  std::string input = "x";
  std::vector<int64_t> shape;
  std::string values;  // empty: read from stdin
  double timeout_s = 10.0;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* kUsage =
    "usage: predict (--deployment NAME | --model NAME [--alias ALIAS]) --shape D0,D1,...\n"
    "               [--input NAME] [--values V,V,... (else read from stdin)]\n"
    "               [--inference-address HOST:PORT] [--registry-address HOST:PORT]\n"
    "               [--token TOKEN] [--ca-file PEM] [--timeout SECONDS]\n";

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::vector<std::string> split(const std::string& text, const std::string& separators) {
  std::vector<std::string> parts;
  std::string current;
  for (char c : text) {
    if (separators.find(c) != std::string::npos) {
      if (!current.empty()) parts.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) parts.push_back(current);
  return parts;
}

Options parse_args(int argc, char** argv) {
  Options o;
  o.inference_address = env_or("BEAMOPS_INFERENCE_ADDRESS", o.inference_address);
  o.registry_address = env_or("BEAMOPS_REGISTRY_ADDRESS", o.registry_address);
  o.token = env_or("BEAMOPS_TOKEN", "");
  std::map<std::string, std::string*> strings = {
      {"--inference-address", &o.inference_address}, {"--registry-address", &o.registry_address},
      {"--token", &o.token}, {"--ca-file", &o.ca_file}, {"--deployment", &o.deployment},
      {"--model", &o.model}, {"--alias", &o.alias}, {"--input", &o.input}, {"--values", &o.values}};
  std::string shape;
  std::string timeout;
  strings["--shape"] = &shape;
  strings["--timeout"] = &timeout;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    std::string value;
    auto eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw UsageError("missing value for " + arg);
    }
    auto it = strings.find(arg);
    if (it == strings.end()) throw UsageError("unknown flag " + arg);
    *it->second = value;
  }
  if (o.deployment.empty() == o.model.empty())
    throw UsageError("give exactly one of --deployment and --model");
  if (!o.alias.empty() && o.model.empty()) throw UsageError("--alias needs --model");
  if (shape.empty()) throw UsageError("--shape is required, e.g. --shape 2,4");
  for (const auto& d : split(shape, ",x ")) {
    try {
      size_t used = 0;
      long long dim = std::stoll(d, &used);
      if (used != d.size() || dim < 0) throw std::invalid_argument(d);
      o.shape.push_back(dim);
    } catch (const std::exception&) {
      throw UsageError("--shape: '" + d + "' is not a non-negative integer");
    }
  }
  if (!timeout.empty()) {
    try {
      o.timeout_s = std::stod(timeout);
    } catch (const std::exception&) {
      throw UsageError("--timeout: '" + timeout + "' is not a number of seconds");
    }
    if (o.timeout_s <= 0) throw UsageError("--timeout must be positive");
  }
  return o;
}

std::vector<float> parse_values(const std::string& text, size_t expected) {
  std::vector<float> values;
  for (const auto& v : split(text, ", \t\r\n")) {
    try {
      size_t used = 0;
      float f = std::stof(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
      values.push_back(f);
    } catch (const std::exception&) {
      throw UsageError("'" + v + "' is not a number");
    }
  }
  if (values.size() != expected)
    throw UsageError("shape holds " + std::to_string(expected) + " values but " +
                     std::to_string(values.size()) + " were given");
  return values;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read CA file " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// ---------------------------------------------------------------------------------------------
// Calls: a deadline on every attempt, the token on every call, UNAVAILABLE retried with
// exponential backoff and jitter.

struct CallError {
  std::string rpc;
  grpc::Status status;
};

template <typename Response>
Response call(const std::string& rpc, const Options& options,
              const std::function<grpc::Status(grpc::ClientContext*, Response*)>& invoke) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  double backoff_s = 0.2;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000)));
    if (!options.token.empty()) context.AddMetadata("authorization", "Bearer " + options.token);
    Response response;
    grpc::Status status = invoke(&context, &response);
    if (status.ok()) return response;
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || attempt == kMaxAttempts)
      throw CallError{rpc, status};
    double wait = backoff_s * jitter(rng);
    std::cerr << rpc << ": UNAVAILABLE (" << status.error_message() << "), attempt " << attempt
              << "/" << kMaxAttempts << ", retrying in " << static_cast<int>(wait * 1000)
              << " ms\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(wait * 1000)));
    backoff_s = std::min(backoff_s * 2, 5.0);
  }
}

const char* code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

int report(const CallError& e) {
  const grpc::StatusCode code = e.status.error_code();
  std::cerr << "error: " << e.rpc << " failed with " << code_name(code) << ": "
            << e.status.error_message() << "\n";
  switch (code) {
    case grpc::StatusCode::NOT_FOUND: return 3;
    case grpc::StatusCode::UNAUTHENTICATED:
      std::cerr << "hint: pass a valid token with --token or BEAMOPS_TOKEN\n";
      return 4;
    case grpc::StatusCode::PERMISSION_DENIED:
      std::cerr << "hint: this token's role may not make this call\n";
      return 4;
    case grpc::StatusCode::INVALID_ARGUMENT:
      std::cerr << "hint: the request was rejected as invalid; check --input, --shape and "
                   "--values against the deployment's signature\n";
      return 5;
    case grpc::StatusCode::FAILED_PRECONDITION: return 6;
    case grpc::StatusCode::UNAVAILABLE:
      std::cerr << "hint: still unavailable after " << kMaxAttempts << " attempts\n";
      return 7;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 8;
    case grpc::StatusCode::UNIMPLEMENTED:
      std::cerr << "hint: the server does not implement " << e.rpc
                << " (an older or unfinished service version)\n";
      return 1;
    default: return 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Output: one JSON line.

std::string json_string(const std::string& s) {
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

std::string json_number(double v, int precision) {
  if (std::isnan(v)) return "\"NaN\"";
  if (std::isinf(v)) return v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

// Little-endian raw bytes (this program assumes a little-endian host, as x86 and ARM are).
template <typename T>
std::vector<T> elements(const std::string& raw) {
  std::vector<T> out(raw.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), raw.data(), out.size() * sizeof(T));
  return out;
}

std::string json_values(const common::Tensor& t) {
  std::vector<std::string> items;
  const std::string& raw = t.raw_data();
  switch (t.dtype()) {
    case common::DATA_TYPE_FLOAT32:
      for (float v : elements<float>(raw)) items.push_back(json_number(v, 9));
      break;
    case common::DATA_TYPE_FLOAT64:
      for (double v : elements<double>(raw)) items.push_back(json_number(v, 17));
      break;
    case common::DATA_TYPE_INT8:
      for (int8_t v : elements<int8_t>(raw)) items.push_back(std::to_string(v));
      break;
    case common::DATA_TYPE_INT16:
      for (int16_t v : elements<int16_t>(raw)) items.push_back(std::to_string(v));
      break;
    case common::DATA_TYPE_INT32:
      for (int32_t v : elements<int32_t>(raw)) items.push_back(std::to_string(v));
      break;
    case common::DATA_TYPE_INT64:
      for (int64_t v : elements<int64_t>(raw)) items.push_back(std::to_string(v));
      break;
    case common::DATA_TYPE_UINT8:
      for (uint8_t v : elements<uint8_t>(raw)) items.push_back(std::to_string(v));
      break;
    case common::DATA_TYPE_UINT16:
      for (uint16_t v : elements<uint16_t>(raw)) items.push_back(std::to_string(v));
      break;
    case common::DATA_TYPE_UINT32:
      for (uint32_t v : elements<uint32_t>(raw)) items.push_back(std::to_string(v));
      break;
    case common::DATA_TYPE_UINT64:
      for (uint64_t v : elements<uint64_t>(raw)) items.push_back(std::to_string(v));
      break;
    case common::DATA_TYPE_BOOL:
      for (uint8_t v : elements<uint8_t>(raw)) items.push_back(v ? "true" : "false");
      break;
    default:
      return "null";  // FLOAT16, BYTES: not decoded by this example
  }
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  return out + "]";
}

std::string dtype_name(common::DataType dtype) {
  std::string name = common::DataType_Name(dtype);
  const std::string prefix = "DATA_TYPE_";
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

std::string to_json(const inference::PredictResponse& response) {
  std::string out = "{\"deployment\":" + json_string(response.deployment()) +
                    ",\"model\":" + json_string(response.parameters().model()) +
                    ",\"parameters_version\":" + json_string(response.parameters().version()) +
                    ",\"outputs\":{";
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& t = response.outputs(i);
    out += (i ? "," : "") + json_string(t.name()) + ":{\"dtype\":" +
           json_string(dtype_name(t.dtype())) + ",\"shape\":[";
    for (int d = 0; d < t.shape_size(); ++d) out += (d ? "," : "") + std::to_string(t.shape(d));
    out += "],\"values\":" + json_values(t) + "}";
  }
  return out + "}}";
}

std::shared_ptr<grpc::Channel> open_channel(const std::string& address, const Options& o) {
  if (o.ca_file.empty()) return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = read_file(o.ca_file);
  return grpc::CreateChannel(address, grpc::SslCredentials(ssl));
}

int run(const Options& o) {
  size_t count = 1;
  for (int64_t d : o.shape) count *= static_cast<size_t>(d);
  std::string text = o.values;
  if (text.empty()) {
    std::stringstream in;
    in << std::cin.rdbuf();
    text = in.str();
  }
  std::vector<float> values = parse_values(text, count);

  auto inference_stub = inference::InferenceService::NewStub(open_channel(o.inference_address, o));

  // 1. Which version does the alias point at? (registry)
  if (!o.alias.empty()) {
    auto registry_stub = registry::RegistryService::NewStub(open_channel(o.registry_address, o));
    registry::ResolveAliasRequest request;
    request.set_model(o.model);
    request.set_alias(o.alias);
    auto resolved = call<registry::ResolveAliasResponse>(
        "RegistryService.ResolveAlias", o,
        [&](grpc::ClientContext* c, registry::ResolveAliasResponse* r) {
          return registry_stub->ResolveAlias(c, request, r);
        });
    std::cerr << "alias " << o.model << "@" << o.alias << " -> parameters "
              << resolved.parameters().version() << "\n";
  }

  // 2. What is deployed? (every page)
  inference::ListDeploymentsRequest list;
  list.set_model(o.model);
  do {
    auto page = call<inference::ListDeploymentsResponse>(
        "InferenceService.ListDeployments", o,
        [&](grpc::ClientContext* c, inference::ListDeploymentsResponse* r) {
          return inference_stub->ListDeployments(c, list, r);
        });
    for (const auto& d : page.deployments())
      std::cerr << "deployment " << d.name() << ": " << inference::DeploymentState_Name(d.state())
                << ", serving " << d.parameters().model() << " " << d.parameters().version()
                << "\n";
    list.set_page_token(page.next_page_token());
  } while (!list.page_token().empty());

  // 3. Predict: one float32 tensor, raw little-endian bytes in row-major order.
  inference::PredictRequest request;
  if (!o.deployment.empty()) {
    request.set_deployment(o.deployment);
  } else {
    request.mutable_model()->set_model(o.model);
    if (!o.alias.empty()) request.mutable_model()->set_alias(o.alias);
  }
  common::Tensor* input = request.add_inputs();
  input->set_name(o.input);
  input->set_dtype(common::DATA_TYPE_FLOAT32);
  for (int64_t d : o.shape) input->add_shape(d);
  input->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()),
                                  values.size() * sizeof(float)));
  auto response = call<inference::PredictResponse>(
      "InferenceService.Predict", o, [&](grpc::ClientContext* c, inference::PredictResponse* r) {
        return inference_stub->Predict(c, request, r);
      });
  std::cout << to_json(response) << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const CallError& e) {
    return report(e);
  }
}
