"""Writes cases.json: what the Python service's validation answers for each case.

The Go tests (validate_test.go) check that the port gives the same messages, fields, metadata,
shapes and batch sizes. Regenerate after validation.py or tensors.py change:

    .venv/bin/python services/inference/gateway/internal/validate/testdata/make_cases.py
"""

import json
from pathlib import Path

from beamops.common.v1 import tensor_pb2 as t
from beamops.inference.domain import Signature, TensorSig
from beamops.inference.validation import InputChecker, check_outputs, output_ranks, shape_output
from beamops.inference.domain import RawTensor
from beamops.runtime.errors import InvalidArgument

F32, F64, I64, BYTES = t.DATA_TYPE_FLOAT32, t.DATA_TYPE_FLOAT64, t.DATA_TYPE_INT64, t.DATA_TYPE_BYTES


def sig(inputs, outputs=(("y", F32, [-1, 2]),)):
    return {"inputs": [list(i) for i in inputs], "outputs": [list(o) for o in outputs]}


def tensor(name, dtype, shape, nbytes):
    return {"name": name, "dtype": dtype, "shape": list(shape), "nbytes": nbytes}


X = (("x", F32, [-1, 4]),)
XS = (("x", F32, [-1, 4]), ("s", I64, [-1]))
FIXED = (("x", F32, [3, 4]),)
CASES = [
    ("ok batch", sig(X), 64, [tensor("x", F32, [2, 4], 32)], []),
    ("ok no batch", sig(FIXED), 0, [tensor("x", F32, [3, 4], 48)], []),
    ("rank-1 becomes [rows, 1]", sig(XS), 64, [tensor("x", F32, [3, 4], 48), tensor("s", I64, [3], 24)], []),
    ("rank-1 without batching stays", sig((("s", I64, [-1]),)), 0, [tensor("s", I64, [5], 40)], []),
    ("unknown input", sig(X), 64, [tensor("y", F32, [2, 4], 32)], []),
    ("unknown input, several expected", sig(XS), 64, [tensor("x", F32, [2, 4], 32), tensor("z", F32, [2], 8)], []),
    ("given twice", sig(X), 64, [tensor("x", F32, [2, 4], 32), tensor("x", F32, [2, 4], 32)], []),
    ("dtype", sig(X), 64, [tensor("x", F64, [2, 4], 64)], []),
    ("dtype unspecified", sig(X), 64, [tensor("x", 0, [2, 4], 32)], []),
    ("dtype unknown number", sig(X), 64, [tensor("x", 99, [2, 4], 32)], []),
    ("bytes dtype", sig((("b", BYTES, [-1]),)), 64, [tensor("b", BYTES, [2], 10)], []),
    ("short bytes", sig(X), 64, [tensor("x", F32, [2, 4], 29)], []),
    ("negative dimension", sig(X), 64, [tensor("x", F32, [2, -1], 0)], []),
    ("too many elements", sig(X), 64, [tensor("x", F32, [2**20, 2**20, 2**20], 0)], []),
    ("zero dimension and huge ones", sig((("x", F32, [-1, -1, -1]),)), 0, [tensor("x", F32, [0, 2**40, 2**40], 0)], []),
    ("rank", sig(X), 64, [tensor("x", F32, [2, 4, 1], 32)], []),
    ("fixed dimension", sig(X), 64, [tensor("x", F32, [4, 5], 80)], []),
    ("fixed shape no batch", sig(FIXED), 0, [tensor("x", F32, [2, 4], 32)], []),
    ("no rows", sig(X), 64, [tensor("x", F32, [0, 4], 0)], []),
    ("too many rows", sig(X), 64, [tensor("x", F32, [65, 4], 65 * 16)], []),
    ("rows differ", sig(XS), 64, [tensor("x", F32, [3, 4], 48), tensor("s", I64, [2], 16)], []),
    ("missing", sig(XS), 64, [tensor("x", F32, [3, 4], 48)], []),
    ("missing all", sig(X), 64, [], []),
    ("quote in name", sig((("it's", F32, [-1]),)), 64, [tensor("it's", F32, [2], 4)], []),
    ("unicode name", sig((("é\u200b", F32, [-1]),)), 64, [tensor("nope\n", F32, [2], 8)], []),
    ("unnamed", sig((("", F32, [-1]),)), 64, [tensor("", 0, [2], 8)], []),
    ("unnamed bytes", sig((("", F32, [-1]),)), 64, [tensor("", F32, [2], 7)], []),
    ("duplicate spec names", sig((("x", F32, [-1]), ("x", F64, [-1]), ("z", F32, [-1]))), 64,
     [tensor("x", F32, [2], 8)], []),
    ("unknown output", sig(X, (("probabilities", F32, [-1, 2]), ("label", I64, [-1]))), 64,
     [tensor("x", F32, [2, 4], 32)], ["label", "nope"]),
    ("outputs deduplicated", sig(X, (("probabilities", F32, [-1, 2]), ("label", I64, [-1]))), 64,
     [tensor("x", F32, [2, 4], 32)], ["label", "probabilities", "label"]),
    ("outputs default", sig(X, (("probabilities", F32, [-1, 2]), ("label", I64, [-1]))), 64,
     [tensor("x", F32, [2, 4], 32)], []),
    ("bad input before bad output", sig(X), 64, [tensor("q", F32, [2, 4], 32)], ["nope"]),
]


def signature(s):
    def specs(items):
        return [TensorSig(name=n, dtype=d, shape=tuple(sh)) for n, d, sh in items]
    return Signature(inputs=specs(s["inputs"]), outputs=specs(s["outputs"]))


def run(name, s, max_batch, tensors, outputs):
    pb = [t.Tensor(name=x["name"], dtype=x["dtype"], shape=x["shape"], raw_data=b"\0" * x["nbytes"]) for x in tensors]
    case = {"name": name, "signature": s, "max_batch_size": max_batch, "tensors": tensors, "output_names": outputs}
    sg = signature(s)
    try:
        raw, rows = InputChecker(sg, max_batch).check(pb)
        names = check_outputs(outputs, sg)
    except InvalidArgument as exc:
        case["error"] = {"message": exc.message, "field": exc.field, "metadata": exc.metadata}
        return case
    case["checked"] = [{"name": r.name, "shape": list(r.shape)} for r in raw]
    case["rows"] = rows
    case["outputs"] = names
    return case


def shape_cases():
    ranks = output_ranks(signature(sig(X, (("label", I64, [-1]), ("p", F32, [-1, 1]), ("q", F32, [-1, 1, 1])))))
    out = []
    for name, shape in (("label", (3, 1)), ("label", (3, 2)), ("p", (3, 1)), ("q", (3, 1)), ("other", (3, 1)),
                        ("label", (3,))):
        got = shape_output(RawTensor(name, F32, shape, b""), ranks)
        out.append({"name": name, "shape": list(shape), "want": list(got.shape)})
    return out


cases = [run(*c) for c in CASES]
def lines(items):
    return ",\n  ".join(json.dumps(i, ensure_ascii=False) for i in items)


text = ('{"check": [\n  ' + lines(cases) + '\n ],\n "shape_output": [\n  ' + lines(shape_cases())
        + "\n ]\n}\n")
json.loads(text)
Path(__file__).with_name("cases.json").write_text(text)
print(f"wrote {len(cases)} cases")
