"""Parameters versions through gRPC: the six rows of the rule table, idempotency, compatibility."""

from __future__ import annotations

import grpc
import pytest

from beamops.registry.v1 import registry_service_pb2 as rs
from tests.fixtures.registry import assert_clear, make_onnx, signature


async def test_rule_table_rows_1_to_4(registry):
    await registry.create_model("jet-tagger")
    for version in ("1.0.0", "1.6.0", "2.0.0"):
        await registry.create_type("jet-tagger", version)
    # row 1: type 1.0.0, no parameters yet -> 1.0
    assert (await registry.create_params("jet-tagger", "1.0.0")).version == "1.0"
    # row 2: type 1.0.0, highest 1.0 -> 1.1
    assert (await registry.create_params("jet-tagger", "1.0.0")).version == "1.1"
    # row 3: type 1.6.0, highest 1.1 -> 1.2
    p = await registry.create_params("jet-tagger", "1.6.0")
    assert (p.version, p.model_type_version) == ("1.2", "1.6.0")
    # row 4: type 2.0.0, highest 1.2 -> 2.0
    assert (await registry.create_params("jet-tagger", "2.0.0")).version == "2.0"


async def test_rule_table_row_5_ambiguous_is_refused_and_row_6(registry):
    await registry.create_model("calo")
    await registry.create_type("calo", "3.0.0")
    await registry.create_type("calo", "4.0.0")
    await registry.create_type("calo", "3.3.0")
    assert (await registry.create_params("calo", "4.0.0")).version == "4.0"
    # row 5: type 3.3.0, highest 4.0 and no 3.x -> refused, saying what exists
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_params("calo", "3.3.0")
    assert_clear(err.value, grpc.StatusCode.FAILED_PRECONDITION, "4.0", "major 3", "ambiguous")
    listed = await registry.stub.ListParametersVersions(rs.ListParametersVersionsRequest(model="calo"),
                                                        metadata=registry.md("reader"))
    assert [p.version for p in listed.parameters] == ["4.0"]  # nothing was created
    # row 6: type 3.3.0, highest 4.0 and 3.3 exists -> 3.4
    await registry.create_model("calo-b")
    for v in ("3.0.0", "3.3.0", "4.0.0"):
        await registry.create_type("calo-b", v)
    for _ in range(4):
        await registry.create_params("calo-b", "3.0.0")  # 3.0, 3.1, 3.2, 3.3
    assert (await registry.create_params("calo-b", "4.0.0")).version == "4.0"
    assert (await registry.create_params("calo-b", "3.3.0")).version == "3.4"


async def test_latest_compatible_with_a_model_type(registry):
    await registry.create_model("m")
    for v in ("1.0.0", "1.6.0", "2.0.0"):
        await registry.create_type("m", v)
    for v in ("1.0.0", "1.0.0", "1.6.0", "2.0.0"):
        await registry.create_params("m", v)
    md = registry.md("reader")
    got = await registry.stub.GetParametersVersion(
        rs.GetParametersVersionRequest(model="m", latest_compatible_with="1.6.0"), metadata=md)
    assert got.parameters.version == "1.2"
    got = await registry.stub.GetParametersVersion(
        rs.GetParametersVersionRequest(model="m", latest_compatible_with="2.1.0"), metadata=md)
    assert got.parameters.version == "2.0"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.GetParametersVersion(
            rs.GetParametersVersionRequest(model="m", latest_compatible_with="3.0.0"), metadata=md)
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "major 3")


async def test_idempotency_key_returns_the_same_version(registry):
    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")
    first = await registry.create_params("m", "1.0.0", idempotency_key="job-42", metrics={"auc": 0.9})
    again = await registry.create_params("m", "1.0.0", idempotency_key="job-42", metrics={"auc": 0.9})
    assert (first.version, again.version) == ("1.0", "1.0")
    assert again.create_time == first.create_time
    other = await registry.create_params("m", "1.0.0", idempotency_key="job-43")
    assert other.version == "1.1"
    with pytest.raises(grpc.aio.AioRpcError) as err:  # same key, different request
        await registry.create_params("m", "1.0.0", idempotency_key="job-42", metrics={"auc": 0.5})
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key")


async def test_unknown_type_and_malformed_versions(registry):
    await registry.create_model("m")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_params("m", "1.0.0")
    assert_clear(err.value, grpc.StatusCode.NOT_FOUND, "1.0.0")
    for bad in ("1.0", "01.0.0", "1.0.0-rc1", "v1.0.0", ""):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.create_type("m", bad)
        assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "MAJOR.MINOR.PATCH")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.stub.GetParametersVersion(rs.GetParametersVersionRequest(model="m", version="1.x"),
                                                 metadata=registry.md("reader"))
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "MAJOR.MINOR")


async def test_model_type_is_immutable_but_recreating_the_same_is_fine(registry):
    await registry.create_model("m")
    first = await registry.create_type("m", "1.0.0")
    assert (await registry.create_type("m", "1.0.0")).create_time == first.create_time
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_type("m", "1.0.0", signature(inputs=[("x", 11, (-1, 5))]))
    assert_clear(err.value, grpc.StatusCode.ALREADY_EXISTS, "1.0.0")


async def test_onnx_signature_must_match_the_model_type(registry):
    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")  # x: float32 [-1, 4] -> y: float32 [-1, 1]
    good = await registry.upload("m", make_onnx(4))
    assert [(t.name, list(t.shape)) for t in good.signature.inputs] == [("x", [-1, 4])]
    p = await registry.create_params("m", "1.0.0", primary_artifact_id=good.artifact_id)
    assert p.primary_artifact.sha256 == good.sha256
    wrong_shape = await registry.upload("m", make_onnx(5))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_params("m", "1.0.0", primary_artifact_id=wrong_shape.artifact_id)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "'x'", "[-1, 5]")
    wrong_name = await registry.upload("m", make_onnx(4, input_name="features"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.create_params("m", "1.0.0", primary_artifact_id=wrong_name.artifact_id)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "'x'", "missing")


async def test_list_filters_order_and_pages(registry):
    await registry.create_model("m")
    await registry.create_type("m", "1.0.0")
    await registry.create_type("m", "2.0.0")
    for i, auc in enumerate([0.7, 0.95, 0.8, 0.9]):
        await registry.create_params("m", "1.0.0" if i < 3 else "2.0.0", metrics={"auc": auc},
                                     tags={"run": "even" if i % 2 == 0 else "odd"})
    md = registry.md("reader")
    list_ = registry.stub.ListParametersVersions
    newest = await list_(rs.ListParametersVersionsRequest(model="m"), metadata=md)
    assert [p.version for p in newest.parameters] == ["2.0", "1.2", "1.1", "1.0"]
    best = await list_(rs.ListParametersVersionsRequest(model="m", order=rs.PARAMETERS_ORDER_METRIC_DESC,
                                                        order_metric="auc"), metadata=md)
    assert [p.version for p in best.parameters] == ["1.1", "2.0", "1.2", "1.0"]
    ranged = await list_(rs.ListParametersVersionsRequest(
        model="m", metric_ranges=[rs.MetricRange(metric="auc", min=0.8, max=0.92)]), metadata=md)
    assert sorted(p.version for p in ranged.parameters) == ["1.2", "2.0"]
    major1 = await list_(rs.ListParametersVersionsRequest(model="m", model_type_version="1.5.0",
                                                          tags={"run": "even"}), metadata=md)
    assert [p.version for p in major1.parameters] == ["1.2", "1.0"]
    seen, token = [], ""
    while True:
        page = await list_(rs.ListParametersVersionsRequest(model="m", page_size=3, page_token=token), metadata=md)
        seen += [p.version for p in page.parameters]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["2.0", "1.2", "1.1", "1.0"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await list_(rs.ListParametersVersionsRequest(model="m", page_token="garbage!"), metadata=md)
    assert_clear(err.value, grpc.StatusCode.INVALID_ARGUMENT, "page_token")
