"""Reading and comparing ONNX signatures; refusing pickles."""

from __future__ import annotations

import pickle

import onnx
import pytest
from onnx import TensorProto, helper

from beamops.registry.content_checks import check_content, is_pickle
from beamops.registry.entities import Signature, TensorSpec
from beamops.registry.onnx_signature import load_checked, signature_difference, signature_of
from beamops.runtime.errors import InvalidArgument
from tests.fixtures.registry import make_onnx


def test_signature_of_a_model_with_symbolic_batch(tmp_path):
    model = onnx.load_from_string(make_onnx(4))
    assert signature_of(model) == Signature(
        inputs=(TensorSpec("x", "float32", (-1, 4)),),  # the initializer W is not an input
        outputs=(TensorSpec("y", "float32", (-1, 1)),))


def test_dtypes_and_unknown_dims():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["ids"], ["out"])], "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 3])],
        [helper.make_tensor_value_info("out", TensorProto.INT64, None)])
    sig = signature_of(helper.make_model(graph))
    assert sig.inputs == (TensorSpec("ids", "int64", (-1, 3)),)
    assert sig.outputs == (TensorSpec("out", "int64", ()),)


def test_difference_names_the_tensor():
    declared = Signature((TensorSpec("x", "float32", (-1, 4)),), (TensorSpec("y", "float32", (-1, 1)),))
    assert signature_difference(declared, declared) is None
    wrong_shape = Signature((TensorSpec("x", "float32", (-1, 5)),), declared.outputs)
    difference = signature_difference(declared, wrong_shape)
    assert "'x'" in difference and "[-1, 5]" in difference
    wrong_dtype = Signature(declared.inputs, (TensorSpec("y", "float64", (-1, 1)),))
    assert "output tensor 'y' has dtype float64" in signature_difference(declared, wrong_dtype)
    extra = Signature(declared.inputs + (TensorSpec("z", "float32", (1,)),), declared.outputs)
    assert "'z'" in signature_difference(declared, extra)


def test_checker_failure_is_invalid_argument(tmp_path):
    model = onnx.load_from_string(make_onnx(4))
    model.graph.node[0].input[1] = "does-not-exist"
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(InvalidArgument) as err:
        load_checked(path)
    assert "onnx.checker" in err.value.message and str(tmp_path) not in err.value.message


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickles_are_recognised(tmp_path, protocol):
    data = pickle.dumps([1], protocol=protocol)
    assert is_pickle(data)
    path = tmp_path / "p.bin"
    path.write_bytes(data)
    with pytest.raises(InvalidArgument, match="pickle"):
        check_content(path, "other")


def test_plain_content_passes(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b'{"luts": 1200}')
    assert not is_pickle(path.read_bytes())
    assert check_content(path, "firmware_report") is None
