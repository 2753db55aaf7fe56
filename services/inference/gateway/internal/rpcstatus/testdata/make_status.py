"""Writes status.json: grpc-status-details-bin as the Python service's status_for makes it.

    .venv/bin/python services/inference/gateway/internal/rpcstatus/testdata/make_status.py
"""

import base64
import json
from pathlib import Path

from beamops.runtime import errors
from beamops.runtime.interceptors import status_for

CASES = {
    "invalid_argument": errors.InvalidArgument("input 'x' is missing", field="inputs", tensor="x"),
    "invalid_field": errors.InvalidArgument("request_id is required", field="request_id"),
    "unavailable": errors.Unavailable("Triton is not reachable (running the model); retry shortly"),
    "failed_precondition": errors.FailedPrecondition("Triton failed running the model: boom"),
    "internal": IndexError("tuple index out of range"),
}
out = {}
for name, exc in CASES.items():
    st = status_for(exc, "/beamops.inference.v1.InferenceService/Predict", "req-1")
    md = dict(st.trailing_metadata)
    out[name] = {"code": st.code.value[0], "message": st.details,
                 "details_bin": base64.b64encode(md["grpc-status-details-bin"]).decode(),
                 "request_id": md["x-request-id"]}
Path(__file__).with_name("status.json").write_text(json.dumps(out, indent=1) + "\n")
