"""Triton Python-backend model that runs ``<version>/model.onnx`` with ONNX Runtime (CPU).

Copied as ``model.py`` into each model folder of the bundled Triton's repository; runs inside the
Python-backend stub, in the Triton virtual environment (numpy<2, onnxruntime). Tensor names,
output dtypes and output dims come from the model's config.pbtxt. Config ``parameters``:
``intra_op_threads`` (default 1), ``inter_op_threads`` (default 1).

Requests of one batch are run through one ``InferenceSession.run`` (concatenated on the batch
axis) when the model batches; if that fails, each request runs alone so that one bad request only
fails itself.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_threads") or 1)
        options.inter_op_num_threads = int(params.get("inter_op_threads") or 1)
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.batching = config.get("max_batch_size", 0) > 0
        self.inputs = [t["name"] for t in config["input"]]
        to_numpy = pb_utils.triton_string_to_numpy
        self.outputs = [
            (t["name"], to_numpy(t["data_type"]), [int(d) for d in t["dims"]])
            for t in config["output"]
        ]
        self.output_names = [name for name, _, _ in self.outputs]
        # Rank-1 ONNX inputs (one value per sample) arrive from Triton as [batch, 1].
        self.flat_inputs = {i.name for i in self.session.get_inputs() if len(i.shape) == 1}
        onnx_inputs = {i.name for i in self.session.get_inputs()}
        onnx_outputs = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self.inputs if n not in onnx_inputs]
        missing += [n for n in self.output_names if n not in onnx_outputs]
        if missing:
            raise pb_utils.TritonModelException(f"tensors not in model.onnx: {missing}")

    def execute(self, requests):
        if self.batching and len(requests) > 1:
            try:
                return self._run_batched([self._feeds(request) for request in requests])
            except Exception:
                pass  # fall back to one run per request, so errors land on the right request
        responses = []
        for request in requests:
            try:
                results = self.session.run(self.output_names, self._feeds(request))
                responses.append(self._response(results))
            except Exception as exc:
                responses.append(self._error(exc))
        return responses

    def _feeds(self, request):
        feed = {}
        for name in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"input {name!r} missing")
            value = tensor.as_numpy()
            if name in self.flat_inputs and value.ndim == 2:
                value = value.reshape(-1)
            feed[name] = value
        return feed

    def _run_batched(self, feeds):
        sizes = [len(feed[self.inputs[0]]) for feed in feeds]
        joined = {n: np.concatenate([feed[n] for feed in feeds]) for n in self.inputs}
        results = self.session.run(self.output_names, joined)
        if any(len(result) != sum(sizes) for result in results):
            raise ValueError("outputs are not batch-major")
        bounds = np.cumsum(sizes)[:-1]
        parts = [np.split(result, bounds) for result in results]
        return [self._response([p[i] for p in parts]) for i in range(len(feeds))]

    def _response(self, results):
        tensors = []
        for (name, dtype, dims), value in zip(self.outputs, results):
            if self.batching and -1 not in dims:  # e.g. a (batch,) label for dims [1]
                value = value.reshape(len(value), *dims)
            tensors.append(pb_utils.Tensor(name, np.ascontiguousarray(value, dtype=dtype)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    @staticmethod
    def _error(exc):
        return pb_utils.InferenceResponse(
            output_tensors=[], error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
        )

    def finalize(self):
        self.session = None
