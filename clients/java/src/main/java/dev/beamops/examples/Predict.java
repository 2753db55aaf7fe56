package dev.beamops.examples;

import com.google.protobuf.ByteString;
import dev.beamops.common.v1.DataType;
import dev.beamops.common.v1.Tensor;
import dev.beamops.inference.v1.Deployment;
import dev.beamops.inference.v1.InferenceServiceGrpc;
import dev.beamops.inference.v1.ListDeploymentsRequest;
import dev.beamops.inference.v1.ListDeploymentsResponse;
import dev.beamops.inference.v1.ModelSelector;
import dev.beamops.inference.v1.PredictRequest;
import dev.beamops.inference.v1.PredictResponse;
import dev.beamops.registry.v1.RegistryServiceGrpc;
import dev.beamops.registry.v1.ResolveAliasRequest;
import dev.beamops.registry.v1.ResolveAliasResponse;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.AbstractStub;
import io.grpc.stub.MetadataUtils;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Example beamops client in Java: resolve an alias, list deployments, send a float32 tensor to
 * Predict, print the outputs and the parameters version that answered as one JSON line.
 *
 * <pre>
 *   java -jar target/beamops-predict.jar --deployment jet-tagger --shape 2,4 --values 1,2,3,4,5,6,7,8
 *   echo "1 2 3 4" | java -jar target/beamops-predict.jar --model jet-tagger --alias production --shape 1,4
 * </pre>
 *
 * <p>Connection: --inference-address / BEAMOPS_INFERENCE_ADDRESS (default 127.0.0.1:50054),
 * --registry-address / BEAMOPS_REGISTRY_ADDRESS (default 127.0.0.1:50051), --token / BEAMOPS_TOKEN
 * (sent as "authorization: Bearer &lt;token&gt;"), --ca-file PEM (turns TLS on).
 *
 * <p>Exit codes: 0 ok, 1 other error, 2 bad usage, 3 NOT_FOUND, 4 UNAUTHENTICATED or
 * PERMISSION_DENIED, 5 INVALID_ARGUMENT, 6 FAILED_PRECONDITION, 7 UNAVAILABLE after retries,
 * 8 DEADLINE_EXCEEDED.
 */
public final class Predict {
  static final int MAX_ATTEMPTS = 5;

  static final String USAGE =
      "usage: predict (--deployment NAME | --model NAME [--alias ALIAS]) --shape D0,D1,...\n"
          + "               [--input NAME] [--values V,V,... (else read from stdin)]\n"
          + "               [--inference-address HOST:PORT] [--registry-address HOST:PORT]\n"
          + "               [--token TOKEN] [--ca-file PEM] [--timeout SECONDS]\n";

  /** A mistake in the command line: exit code 2. */
  static final class UsageException extends Exception {
    UsageException(String message) {
      super(message);
    }
  }

  /** A failed call, with the RPC's name for the message. */
  static final class CallException extends Exception {
    final String rpc;
    final Status status;

    CallException(String rpc, Status status) {
      super(rpc + " failed with " + status.getCode() + ": " + status.getDescription());
      this.rpc = rpc;
      this.status = status;
    }
  }

  static final class Options {
    String inferenceAddress = envOr("BEAMOPS_INFERENCE_ADDRESS", "127.0.0.1:50054");
    String registryAddress = envOr("BEAMOPS_REGISTRY_ADDRESS", "127.0.0.1:50051");
    String token = envOr("BEAMOPS_TOKEN", "");
    String caFile = "";
    String deployment = "";
    String model = "";
    String alias = "";
    String input = "x";
    String values = "";
    long[] shape;
    long timeoutMillis = 10_000;
  }

  static String envOr(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }

  static Options parse(String[] args) throws UsageException {
    Options o = new Options();
    Map<String, String> flags = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if (arg.equals("-h") || arg.equals("--help")) {
        System.out.print(USAGE);
        System.exit(0);
      }
      int eq = arg.indexOf('=');
      if (eq > 0) {
        flags.put(arg.substring(0, eq), arg.substring(eq + 1));
      } else if (i + 1 < args.length) {
        flags.put(arg, args[++i]);
      } else {
        throw new UsageException("missing value for " + arg);
      }
    }
    String shape = "";
    String timeout = "";
    for (Map.Entry<String, String> flag : flags.entrySet()) {
      String v = flag.getValue();
      switch (flag.getKey()) {
        case "--inference-address" -> o.inferenceAddress = v;
        case "--registry-address" -> o.registryAddress = v;
        case "--token" -> o.token = v;
        case "--ca-file" -> o.caFile = v;
        case "--deployment" -> o.deployment = v;
        case "--model" -> o.model = v;
        case "--alias" -> o.alias = v;
        case "--input" -> o.input = v;
        case "--values" -> o.values = v;
        case "--shape" -> shape = v;
        case "--timeout" -> timeout = v;
        default -> throw new UsageException("unknown flag " + flag.getKey());
      }
    }
    if (o.deployment.isEmpty() == o.model.isEmpty()) {
      throw new UsageException("give exactly one of --deployment and --model");
    }
    if (!o.alias.isEmpty() && o.model.isEmpty()) {
      throw new UsageException("--alias needs --model");
    }
    if (shape.isEmpty()) {
      throw new UsageException("--shape is required, e.g. --shape 2,4");
    }
    List<String> dims = fields(shape, "[,x\\s]+");
    o.shape = new long[dims.size()];
    for (int i = 0; i < dims.size(); i++) {
      try {
        o.shape[i] = Long.parseLong(dims.get(i));
      } catch (NumberFormatException e) {
        o.shape[i] = -1;
      }
      if (o.shape[i] < 0) {
        throw new UsageException("--shape: '" + dims.get(i) + "' is not a non-negative integer");
      }
    }
    if (!timeout.isEmpty()) {
      try {
        o.timeoutMillis = Math.round(Double.parseDouble(timeout) * 1000);
      } catch (NumberFormatException e) {
        throw new UsageException("--timeout: '" + timeout + "' is not a number of seconds");
      }
      if (o.timeoutMillis <= 0) {
        throw new UsageException("--timeout must be positive");
      }
    }
    return o;
  }

  static List<String> fields(String text, String separators) {
    List<String> out = new ArrayList<>();
    for (String f : text.trim().split(separators)) {
      if (!f.isEmpty()) {
        out.add(f);
      }
    }
    return out;
  }

  static float[] parseValues(String text, long expected) throws UsageException {
    List<String> items = fields(text, "[,\\s]+");
    float[] values = new float[items.size()];
    for (int i = 0; i < values.length; i++) {
      try {
        values[i] = Float.parseFloat(items.get(i));
      } catch (NumberFormatException e) {
        throw new UsageException("'" + items.get(i) + "' is not a number");
      }
    }
    if (values.length != expected) {
      throw new UsageException(
          "shape holds " + expected + " values but " + values.length + " were given");
    }
    return values;
  }

  // -------------------------------------------------------------------------------------------
  // Calls: the token on every call, a deadline on every attempt, UNAVAILABLE retried with
  // exponential backoff and jitter.

  static <S extends AbstractStub<S>, R> R call(
      String rpc, S stub, Options o, Function<S, R> invoke) throws CallException {
    double backoffMillis = 200;
    for (int attempt = 1; ; attempt++) {
      try {
        return invoke.apply(stub.withDeadlineAfter(o.timeoutMillis, TimeUnit.MILLISECONDS));
      } catch (StatusRuntimeException e) {
        Status status = e.getStatus();
        if (status.getCode() != Status.Code.UNAVAILABLE || attempt == MAX_ATTEMPTS) {
          throw new CallException(rpc, status);
        }
        long wait = Math.round(backoffMillis * ThreadLocalRandom.current().nextDouble(0.5, 1.0));
        System.err.printf("%s: UNAVAILABLE (%s), attempt %d/%d, retrying in %d ms%n",
            rpc, status.getDescription(), attempt, MAX_ATTEMPTS, wait);
        try {
          Thread.sleep(wait);
        } catch (InterruptedException interrupted) {
          Thread.currentThread().interrupt();
          throw new CallException(rpc, status);
        }
        backoffMillis = Math.min(backoffMillis * 2, 5_000);
      }
    }
  }

  static ManagedChannel open(String address, Options o) throws UsageException {
    ChannelCredentials credentials = InsecureChannelCredentials.create();
    if (!o.caFile.isEmpty()) {
      try {
        credentials = TlsChannelCredentials.newBuilder().trustManager(new File(o.caFile)).build();
      } catch (IOException e) {
        throw new UsageException("cannot read CA file " + o.caFile + ": " + e.getMessage());
      }
    }
    return Grpc.newChannelBuilder(address, credentials).build();
  }

  static <S extends AbstractStub<S>> S withToken(S stub, Options o) {
    if (o.token.isEmpty()) {
      return stub;
    }
    Metadata headers = new Metadata();
    headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER),
        "Bearer " + o.token);
    return stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
  }

  // -------------------------------------------------------------------------------------------
  // Output: one JSON line.

  static String jsonString(String s) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    return out.append('"').toString();
  }

  static String jsonNumber(double v, boolean isFloat32) {
    if (Double.isNaN(v)) {
      return "\"NaN\"";
    }
    if (Double.isInfinite(v)) {
      return v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    }
    return isFloat32 ? Float.toString((float) v) : Double.toString(v);
  }

  /** The elements of a tensor, from its raw little-endian bytes; null for dtypes not decoded. */
  static String jsonValues(Tensor t) {
    ByteBuffer raw = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    List<String> items = new ArrayList<>();
    switch (t.getDtype()) {
      case DATA_TYPE_FLOAT32 -> {
        while (raw.remaining() >= 4) items.add(jsonNumber(raw.getFloat(), true));
      }
      case DATA_TYPE_FLOAT64 -> {
        while (raw.remaining() >= 8) items.add(jsonNumber(raw.getDouble(), false));
      }
      case DATA_TYPE_INT8 -> {
        while (raw.hasRemaining()) items.add(Byte.toString(raw.get()));
      }
      case DATA_TYPE_UINT8 -> {
        while (raw.hasRemaining()) items.add(Integer.toString(Byte.toUnsignedInt(raw.get())));
      }
      case DATA_TYPE_BOOL -> {
        while (raw.hasRemaining()) items.add(raw.get() != 0 ? "true" : "false");
      }
      case DATA_TYPE_INT16 -> {
        while (raw.remaining() >= 2) items.add(Short.toString(raw.getShort()));
      }
      case DATA_TYPE_UINT16 -> {
        while (raw.remaining() >= 2) items.add(Integer.toString(Short.toUnsignedInt(raw.getShort())));
      }
      case DATA_TYPE_INT32 -> {
        while (raw.remaining() >= 4) items.add(Integer.toString(raw.getInt()));
      }
      case DATA_TYPE_UINT32 -> {
        while (raw.remaining() >= 4) items.add(Integer.toUnsignedString(raw.getInt()));
      }
      case DATA_TYPE_INT64 -> {
        while (raw.remaining() >= 8) items.add(Long.toString(raw.getLong()));
      }
      case DATA_TYPE_UINT64 -> {
        while (raw.remaining() >= 8) items.add(Long.toUnsignedString(raw.getLong()));
      }
      default -> {
        return "null"; // FLOAT16, BYTES: not decoded by this example
      }
    }
    return "[" + String.join(",", items) + "]";
  }

  static String toJson(PredictResponse response) {
    StringBuilder out = new StringBuilder();
    out.append("{\"deployment\":").append(jsonString(response.getDeployment()))
        .append(",\"model\":").append(jsonString(response.getParameters().getModel()))
        .append(",\"parameters_version\":").append(jsonString(response.getParameters().getVersion()))
        .append(",\"outputs\":{");
    for (int i = 0; i < response.getOutputsCount(); i++) {
      Tensor t = response.getOutputs(i);
      List<String> shape = new ArrayList<>();
      for (long d : t.getShapeList()) {
        shape.add(Long.toString(d));
      }
      out.append(i > 0 ? "," : "").append(jsonString(t.getName()))
          .append(":{\"dtype\":").append(jsonString(t.getDtype().name().replaceFirst("^DATA_TYPE_", "")))
          .append(",\"shape\":[").append(String.join(",", shape)).append("]")
          .append(",\"values\":").append(jsonValues(t)).append("}");
    }
    return out.append("}}").toString();
  }

  // -------------------------------------------------------------------------------------------

  static void run(Options o) throws UsageException, CallException, IOException {
    long count = 1;
    for (long d : o.shape) {
      count *= d;
    }
    String text = o.values;
    if (text.isEmpty()) {
      try (InputStream in = System.in) {
        text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
      }
    }
    float[] values = parseValues(text, count);

    ManagedChannel inferenceChannel = open(o.inferenceAddress, o);
    ManagedChannel registryChannel = null;
    try {
      var inference = withToken(InferenceServiceGrpc.newBlockingStub(inferenceChannel), o);

      // 1. Which version does the alias point at? (registry)
      if (!o.alias.isEmpty()) {
        registryChannel = open(o.registryAddress, o);
        var registry = withToken(RegistryServiceGrpc.newBlockingStub(registryChannel), o);
        ResolveAliasRequest request =
            ResolveAliasRequest.newBuilder().setModel(o.model).setAlias(o.alias).build();
        ResolveAliasResponse resolved =
            call("RegistryService.ResolveAlias", registry, o, s -> s.resolveAlias(request));
        System.err.printf("alias %s@%s -> parameters %s%n",
            o.model, o.alias, resolved.getParameters().getVersion());
      }

      // 2. What is deployed? (every page)
      String pageToken = "";
      do {
        ListDeploymentsRequest list =
            ListDeploymentsRequest.newBuilder().setModel(o.model).setPageToken(pageToken).build();
        ListDeploymentsResponse page =
            call("InferenceService.ListDeployments", inference, o, s -> s.listDeployments(list));
        for (Deployment d : page.getDeploymentsList()) {
          System.err.printf("deployment %s: %s, serving %s %s%n", d.getName(), d.getState(),
              d.getParameters().getModel(), d.getParameters().getVersion());
        }
        pageToken = page.getNextPageToken();
      } while (!pageToken.isEmpty());

      // 3. Predict: one float32 tensor, raw little-endian bytes in row-major order.
      ByteBuffer raw = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
      for (float v : values) {
        raw.putFloat(v);
      }
      raw.flip();
      Tensor.Builder input = Tensor.newBuilder()
          .setName(o.input)
          .setDtype(DataType.DATA_TYPE_FLOAT32)
          .setRawData(ByteString.copyFrom(raw));
      for (long d : o.shape) {
        input.addShape(d);
      }
      PredictRequest.Builder request = PredictRequest.newBuilder().addInputs(input);
      if (!o.deployment.isEmpty()) {
        request.setDeployment(o.deployment);
      } else {
        ModelSelector.Builder selector = ModelSelector.newBuilder().setModel(o.model);
        if (!o.alias.isEmpty()) {
          selector.setAlias(o.alias);
        }
        request.setModel(selector);
      }
      PredictRequest built = request.build();
      PredictResponse response =
          call("InferenceService.Predict", inference, o, s -> s.predict(built));
      System.out.println(toJson(response));
    } finally {
      inferenceChannel.shutdownNow();
      if (registryChannel != null) {
        registryChannel.shutdownNow();
      }
    }
  }

  static int report(CallException e) {
    System.err.println("error: " + e.getMessage());
    switch (e.status.getCode()) {
      case NOT_FOUND:
        return 3;
      case UNAUTHENTICATED:
        System.err.println("hint: pass a valid token with --token or BEAMOPS_TOKEN");
        return 4;
      case PERMISSION_DENIED:
        System.err.println("hint: this token's role may not make this call");
        return 4;
      case INVALID_ARGUMENT:
        System.err.println("hint: the request was rejected as invalid; check --input, --shape and"
            + " --values against the deployment's signature");
        return 5;
      case FAILED_PRECONDITION:
        return 6;
      case UNAVAILABLE:
        System.err.println("hint: still unavailable after " + MAX_ATTEMPTS + " attempts");
        return 7;
      case DEADLINE_EXCEEDED:
        return 8;
      case UNIMPLEMENTED:
        System.err.println("hint: the server does not implement " + e.rpc
            + " (an older or unfinished service version)");
        return 1;
      default:
        return 1;
    }
  }

  public static void main(String[] args) {
    int code;
    try {
      run(parse(args));
      code = 0;
    } catch (UsageException e) {
      System.err.println("error: " + e.getMessage());
      System.err.print(USAGE);
      code = 2;
    } catch (CallException e) {
      code = report(e);
    } catch (IOException e) {
      System.err.println("error: " + e.getMessage());
      code = 1;
    }
    System.exit(code);
  }

  private Predict() {}
}
