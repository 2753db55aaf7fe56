"""Real CMS and ATLAS files through the whole platform: register (data service) -> split ->
train (training service) -> registered with lineage (registry) -> deployed on the bundled
Triton (inference service) -> Predict answers like ONNX Runtime on the same events.

One file per case, read by the names physicists use: CMS NanoAOD's flat "MET_pt" and jagged
"Jet_pt" (a TTree), ATLAS PHYSLITE's "AnalysisJetsAuxDyn:pt" (an RNTuple), and CMS muons in an
RNTuple's collection ("_collection0.Muon_pt"). Jagged features are padded (jagged_pad_length).
All four services run once for the module, in this process, on free ports; Triton is the one
``make triton`` installs.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import pytest_asyncio
import uproot

from beamops.common.v1 import auth_pb2, lineage_pb2
from beamops.data.server import create_server as create_data_server
from beamops.data.settings import DataSettings
from beamops.data.v1 import data_service_pb2 as dpb, data_service_pb2_grpc, dataset_pb2
from beamops.inference.server import create_server as create_inference_server
from beamops.inference.settings import InferenceSettings
from beamops.inference.v1 import deployment_pb2, inference_service_pb2 as ipb, inference_service_pb2_grpc
from beamops.registry.server import create_server as create_registry_server
from beamops.registry.settings import RegistrySettings
from beamops.registry.v1 import registry_service_pb2 as rs, registry_service_pb2_grpc
from beamops.runtime.auth import TokenStore
from beamops.tensors import from_tensor, to_tensor
from beamops.training.data_client import read_split
from beamops.training.server import create_server as create_training_server
from beamops.training.settings import TrainingSettings
from beamops.training.spec import DatasetRef
from beamops.training.v1 import job_pb2, training_service_pb2 as ts, training_service_pb2_grpc

from tests.fixtures.services import ROLES, Tokens, running
from tests.real_data import CORPUS

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

FINAL = (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED)
BATCH = 64  # the inference service's default max_batch_size


@dataclass(frozen=True)
class Case:
    file: str
    tree: str
    features: tuple[str, ...]
    label: str
    task: int
    pad: int
    hyperparameters: dict
    cut: tuple[str, float] | None = None  # (flat branch, threshold): keep entries above it


CASES = {
    # CMS NanoAOD (TTree "Events", 947 branches): did the jet trigger fire, from the jets and MET.
    "nanoaod": Case("nanoAOD_2015_CMS_Open_Data_ttbar.root", "Events",
                    ("nJet", "Jet_pt", "Jet_eta", "MET_pt"), "HLT_AK4PFJet30",
                    job_pb2.TASK_CLASSIFICATION, 3, {"max_iter": 15, "min_samples_leaf": 10}),
    # ATLAS PHYSLITE as an RNTuple ("EventData", 100 events): the pile-up energy density from the
    # number of interactions and the jets.
    "physlite-rntuple": Case("uproot-physlite-rntuple_v1-0-0-0.root", "EventData",
                             ("EventInfoAuxDyn:actualInteractionsPerCrossing", "AnalysisJetsAuxDyn:pt",
                              "AnalysisJetsAuxDyn:eta"), "Kt4EMPFlowEventShapeAuxDyn:Density",
                             job_pb2.TASK_REGRESSION, 4, {"max_iter": 15, "min_samples_leaf": 5},
                             cut=("EventInfoAuxDyn:actualInteractionsPerCrossing", 27.0)),
    # CMS muons as an RNTuple (1000 events): the muon count from the collection's members.
    "muons-rntuple": Case("Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root", "Events",
                          ("_collection0.Muon_pt", "_collection0.Muon_eta", "Muon_charge"), "nMuon",
                          job_pb2.TASK_REGRESSION, 3, {"max_iter": 15}),
}


@dataclass
class Chain:
    data: data_service_pb2_grpc.DataServiceStub
    registry: registry_service_pb2_grpc.RegistryServiceStub
    training: training_service_pb2_grpc.TrainingServiceStub
    inference: inference_service_pb2_grpc.InferenceServiceStub
    tokens: Tokens
    data_address: str
    training_settings: TrainingSettings
    data_root: Path

    def md(self, role: str = "publisher"):
        return self.tokens.metadata(role)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def chain(tmp_path_factory, triton_venv):
    tmp = tmp_path_factory.mktemp("real-files")
    root = tmp / "data"
    root.mkdir()
    for case in CASES.values():
        shutil.copyfile(CORPUS / case.file, root / case.file)
    store = TokenStore(tmp / "auth" / "tokens.json")
    tokens = Tokens(path=tmp / "auth" / "tokens.json", store=store,
                    **{role: store.create(f"{role}-user", value) for role, value in ROLES.items()})
    service_token = store.create("inference-service", auth_pb2.ROLE_PUBLISHER)
    data_settings = DataSettings(port=0, var_dir=tmp / "data-var", tokens_file=tokens.path,
                                 data_roots=[root], log_json=False)
    registry_settings = RegistrySettings(port=0, var_dir=tmp / "registry-var", tokens_file=tokens.path,
                                         log_json=False)
    async with running(create_data_server, data_settings) as (data_server, data_channel), \
            running(create_registry_server, registry_settings) as (registry_server, registry_channel):
        training_settings = TrainingSettings(
            port=0, var_dir=tmp / "training-var", tokens_file=tokens.path, log_json=False,
            data_address=f"127.0.0.1:{data_server.port}", registry_address=f"127.0.0.1:{registry_server.port}")
        inference_settings = InferenceSettings(
            port=0, var_dir=tmp / "inference-var", tokens_file=tokens.path, log_json=False,
            registry_address=f"127.0.0.1:{registry_server.port}", registry_token=service_token,
            triton_venv=triton_venv)
        async with running(create_training_server, training_settings) as (_t, training_channel), \
                running(create_inference_server, inference_settings) as (_i, inference_channel):
            yield Chain(data=data_service_pb2_grpc.DataServiceStub(data_channel),
                        registry=registry_service_pb2_grpc.RegistryServiceStub(registry_channel),
                        training=training_service_pb2_grpc.TrainingServiceStub(training_channel),
                        inference=inference_service_pb2_grpc.InferenceServiceStub(inference_channel),
                        tokens=tokens, data_address=f"127.0.0.1:{data_server.port}",
                        training_settings=training_settings, data_root=root)


def _inputs(columns: dict[str, np.ndarray], features: tuple[str, ...]) -> np.ndarray:
    """The model's one input tensor, as the training service documents it: feature by feature, a
    flat branch as one column, a padded jagged one as its pad_length values then its mask."""
    blocks = []
    for name in features:
        col = np.asarray(columns[name])
        if col.ndim == 1:
            blocks.append(col.reshape(-1, 1))
        else:
            blocks += [col, np.asarray(columns[f"{name}_mask"])]
    return np.ascontiguousarray(np.hstack([b.astype(np.float32) for b in blocks]))


async def _follow(chain: Chain, job_id: str) -> job_pb2.Job:
    async for response in chain.training.WatchJob(ts.WatchJobRequest(job_id=job_id), metadata=chain.md("reader"),
                                                  timeout=240):
        change = response.event.state_change
        if response.event.WhichOneof("event") == "state_change" and change.state in FINAL:
            break
    return (await chain.training.GetJob(ts.GetJobRequest(job_id=job_id), metadata=chain.md("reader"))).job


@pytest.mark.parametrize("case_id", list(CASES))
async def test_a_real_file_trains_registers_deploys_and_predicts_like_onnxruntime(chain, case_id):
    case = CASES[case_id]
    dataset = f"real-{case_id}"
    model = f"real-{case_id}"

    # ---- register: the data service counts what uproot counts ----
    registered = (await chain.data.RegisterDatasetVersion(dpb.RegisterDatasetVersionRequest(
        dataset=dataset, source=dataset_pb2.DatasetSource(urls=[case.file], tree_name=case.tree)),
        metadata=chain.md())).version
    with uproot.open(chain.data_root / case.file) as f:
        assert registered.entry_count == f[case.tree].num_entries
    schema = {b.name: b for b in registered.schema.branches}
    for name in (*case.features, case.label):
        assert name in schema, f"{name!r} is not among the {len(schema)} columns the data service lists"

    parent = registered
    if case.cut:  # a name that is not an identifier is written in backticks in a cut
        branch, threshold = case.cut
        parent = (await chain.data.DeriveDatasetVersion(dpb.DeriveDatasetVersionRequest(
            parent=lineage_pb2.DatasetVersionRef(dataset=dataset, version_id=registered.version_id),
            selection=dataset_pb2.SelectionDerivation(cut=f"`{branch}` > {threshold}")),
            metadata=chain.md())).version
        with uproot.open(chain.data_root / case.file) as f:
            kept = int((f[case.tree][branch].array(library="np") > threshold).sum())
        assert 0 < kept < registered.entry_count and parent.entry_count == kept
        assert [p.version_id for p in parent.parents] == [registered.version_id]

    # ---- split ----
    split = (await chain.data.DeriveDatasetVersion(dpb.DeriveDatasetVersionRequest(
        parent=lineage_pb2.DatasetVersionRef(dataset=dataset, version_id=parent.version_id),
        split=dataset_pb2.SplitDerivation(train_fraction=0.6, validation_fraction=0.2, test_fraction=0.2,
                                          seed=1)), metadata=chain.md())).version
    counts = {s.name: s.entry_count for s in split.splits}
    assert set(counts) == {"train", "validation", "test"} and all(counts.values())
    assert sum(counts.values()) == parent.entry_count
    assert [(p.dataset, p.version_id) for p in split.parents] == [(dataset, parent.version_id)]

    # ---- train ----
    spec = job_pb2.JobSpec(
        dataset=lineage_pb2.DatasetVersionRef(dataset=dataset, version_id=split.version_id),
        feature_branches=list(case.features), label_branch=case.label, jagged_pad_length=case.pad,
        seed=42, model=job_pb2.ModelSpec(builtin=job_pb2.BUILTIN_MODEL_GRADIENT_BOOSTED_TREES, task=case.task))
    spec.model.hyperparameters.update(case.hyperparameters)
    spec.publish.model_type.model = model
    spec.publish.model_type.version = "1.0.0"
    submitted = (await chain.training.SubmitJob(ts.SubmitJobRequest(spec=spec), metadata=chain.md())).job
    job = await _follow(chain, submitted.job_id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.failure_message
    assert job.result.onnx_check.passed and job.result.onnx_check.events_compared == counts["test"]

    # ---- registered with lineage pointing at the dataset version it read ----
    params = (await chain.registry.GetParametersVersion(rs.GetParametersVersionRequest(
        model=model, version=job.result.parameters.version), metadata=chain.md("reader"))).parameters
    assert params.lineage.training_job.job_id == job.job_id
    assert {(d.dataset, d.version_id, d.content_hash) for d in params.lineage.datasets} == {
        (dataset, split.version_id, split.content_hash)}
    assert sorted(d.split for d in params.lineage.datasets) == ["test", "train", "validation"]
    inputs = []  # the model's input columns, by name
    for f in case.features:
        flat = schema[f].layout == dataset_pb2.BRANCH_LAYOUT_FLAT
        inputs += [f] if flat else [*(f"{f}[{i}]" for i in range(case.pad)),
                                    *(f"{f}_mask[{i}]" for i in range(case.pad))]
    n_inputs = len(inputs)
    assert [d.feature for d in params.reference_distributions][:n_inputs] == inputs
    onnx_bytes = bytearray()
    async for part in chain.registry.DownloadArtifact(rs.DownloadArtifactRequest(
            artifact_id=params.primary_artifact.artifact_id), metadata=chain.md("reader")):
        if part.WhichOneof("part") == "chunk":
            onnx_bytes += part.chunk
    assert hashlib.sha256(onnx_bytes).hexdigest() == params.primary_artifact.sha256 == job.result.onnx_sha256
    session = ort.InferenceSession(bytes(onnx_bytes), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1]) for i in session.get_inputs()] == [("input", n_inputs)]

    # ---- the test split's events, read back through the data service as the job read them ----
    columns, content_hash = await asyncio.to_thread(
        read_split, chain.data_address, chain.tokens.reader, DatasetRef(dataset, split.version_id), "test",
        list(case.features), case.pad)
    assert content_hash == split.content_hash
    x = _inputs(columns, case.features)
    assert x.shape == (counts["test"], n_inputs)
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x}), strict=True))
    native = np.load(chain.training_settings.jobs_dir / job.job_id / "predictions.npy")
    ours = expected["probabilities"] if case.task == job_pb2.TASK_CLASSIFICATION else expected["variable"]
    np.testing.assert_allclose(ours.reshape(native.shape), native, rtol=1e-4, atol=1e-4)  # same events

    # ---- deployed on the bundled Triton; Predict answers like ONNX Runtime ----
    deployment = (await chain.inference.Deploy(ipb.DeployRequest(
        model=model, target=deployment_pb2.DeploymentTarget(parameters_version=params.version),
        reason="end-to-end test on a real file"), metadata=chain.md("deployer"))).deployment
    assert deployment.state == deployment_pb2.DEPLOYMENT_STATE_READY, deployment.state_message
    assert [(t.name, list(t.shape)) for t in deployment.signature.inputs] == [("input", [-1, n_inputs])]
    got: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), BATCH):
        reply = await chain.inference.Predict(ipb.PredictRequest(
            deployment=deployment.name, inputs=[to_tensor("input", x[start:start + BATCH])]),
            metadata=chain.md("reader"))
        assert (reply.parameters.model, reply.parameters.version) == (model, params.version)
        for tensor in reply.outputs:
            got.setdefault(tensor.name, []).append(from_tensor(tensor))
    assert set(got) == set(expected)
    for name, want in expected.items():
        answer = np.concatenate(got[name])
        assert answer.shape == want.shape and answer.dtype == want.dtype, name
        if np.issubdtype(want.dtype, np.integer):
            assert answer.tolist() == want.tolist(), name
        else:
            np.testing.assert_allclose(answer, want, rtol=1e-5, atol=1e-5, err_msg=name)

    with pytest.raises(grpc.aio.AioRpcError) as err:  # the width is the model's, features and masks
        await chain.inference.Predict(ipb.PredictRequest(
            deployment=deployment.name, inputs=[to_tensor("input", x[:2, :-1])]), metadata=chain.md("reader"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
