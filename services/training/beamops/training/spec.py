"""The training job spec as typed values, and its validation (no gRPC here).

A spec is checked in two steps, both at submit time, before anything runs:

1. :func:`validate_spec` checks everything that needs no other service: model kind, task,
   hyperparameter names and values, metrics, seed, feature list, publish target, entry point.
2. :func:`check_against_data` checks the dataset versions the data service described: every
   branch exists and is numeric, the label branch is flat and numeric, the splits exist and are
   not empty; it pins each dataset version to its content hash.

Every problem is an ``InvalidArgument`` naming the request field at fault (``spec.model...``).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from beamops.runtime.errors import InvalidArgument, PermissionDenied
from beamops.runtime.names import check_name

from . import hyperparameters as hp
from .search import SearchSpec, validate_search

TASKS = ("classification", "regression")
EXECUTORS = ("", "local", "dask")
BUILTIN_KINDS = ("gradient_boosted_trees", "mlp", "xgboost", "lightgbm")
METRICS = {
    "classification": ("roc_auc", "accuracy", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
DEFAULT_METRICS = METRICS
DEFAULT_ONNX_TOLERANCE = 1e-5  # absolute, times the largest |output|
DEFAULT_ONNX_RELATIVE_TOLERANCE = 1e-5
MAX_QUALITY_GATES = 32
GATE_SPLITS = ("validation", "test")
# "test/roc_auc >= 0.8": split, metric, comparison, number
GATE = re.compile(r"^\s*([A-Za-z_]+)\s*/\s*([A-Za-z0-9_]+)\s*(>=|<=|>|<)\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*$")
# What a sample's feature_branches value may name: a branch, or one element of a jagged branch.
ELEMENT = re.compile(r"^(.+)\[([0-9]{1,4})\]$")
MAX_FEATURES = 4096
MAX_PAD_LENGTH = 1024

# "package.module:Class": dotted Python identifiers, a colon, one identifier. Nothing else.
ENTRY_POINT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
VERSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the data service checks it exactly
SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
# A branch or field by the full path the data service lists it with: whatever a ROOT file holds
# ("Jet_pt", "Muon/Muon.pt", "_collection0.Muon_pt", "AnalysisJetsAuxDyn:pt", "2x3Mat",
# "vector<Frame>.id"). Only the absurd is refused here: empty, too long, control characters or
# whitespace (no branch of a real file has them; pasted text does). Existence is checked later.
MAX_BRANCH_NAME = 512


@dataclass(frozen=True)
class DatasetRef:
    """A dataset version; content_hash is filled in (pinned) by :func:`check_against_data`."""

    dataset: str
    version_id: str
    content_hash: str = ""


@dataclass(frozen=True)
class Sample:
    """One sample of a class: a dataset version, its branch for each job feature, its weight."""

    dataset: DatasetRef
    # job feature -> branch ("px1") or element of a jagged branch ("Muon_Px[0]") in this sample
    feature_branches: Mapping[str, str] = field(default_factory=dict)
    event_weight: float = 0.0  # 0: unset (1, or the cross-section normalisation)
    cross_section: float = 0.0
    luminosity: float = 0.0
    generated_events: int = 0  # > 0: the weight is cross_section * luminosity / generated_events

    @property
    def weight(self) -> float:
        if self.generated_events:
            return self.cross_section * self.luminosity / self.generated_events
        return self.event_weight or 1.0

    def source(self, feature: str) -> str:
        return self.feature_branches.get(feature, feature)

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), feature_branches=dict(self.feature_branches))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Sample":
        return cls(DatasetRef(**d["dataset"]), dict(d.get("feature_branches", {})),
                   float(d.get("event_weight", 0.0)), float(d.get("cross_section", 0.0)),
                   float(d.get("luminosity", 0.0)), int(d.get("generated_events", 0)))


@dataclass(frozen=True)
class SourceClass:
    """A class: either one ``dataset`` read by the feature names with weight 1, or ``samples``."""

    dataset: DatasetRef | None
    class_index: int
    class_name: str = ""
    samples: tuple[Sample, ...] = ()

    @property
    def all_samples(self) -> tuple[Sample, ...]:
        return self.samples or ((Sample(self.dataset),) if self.dataset is not None else ())

    @property
    def label(self) -> str:
        return repr(self.class_name) if self.class_name else str(self.class_index)


@dataclass(frozen=True)
class Splits:
    train: str = "train"
    validation: str = "validation"
    test: str = "test"
    # False when the validation split was not named and the dataset has none: it is skipped.
    use_validation: bool = True


@dataclass(frozen=True)
class ModelChoice:
    """Exactly one of builtin / entry_point is set."""

    builtin: str = ""
    entry_point: str = ""
    task: str = ""
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.builtin or self.entry_point


@dataclass(frozen=True)
class PublishTarget:
    model: str
    model_type_version: str
    description: str = ""


@dataclass(frozen=True)
class TrainingSpec:
    """A complete, validated training job spec (see job.proto JobSpec for the meaning)."""

    features: tuple[str, ...]
    model: ModelChoice
    dataset: DatasetRef | None = None
    splits: Splits = field(default_factory=Splits)
    jagged_pad_length: int = 0
    label_branch: str = ""
    source_classes: tuple[SourceClass, ...] = ()
    weight_branch: str = ""
    seed: int = 0
    metrics: tuple[str, ...] = ()
    publish: PublishTarget | None = None
    executor: str = ""
    onnx_tolerance: float = 0.0
    timeout_s: float = 0.0
    description: str = ""
    # Set for a hyperparameter search (trials run in parallel; the best is registered).
    search: SearchSpec | None = None
    onnx_relative_tolerance: float = 0.0
    quality_gates: tuple[str, ...] = ()
    # Filled in by check_against_data, one tuple per dataset_fields() entry: the sources that read
    # one element of a jagged branch ("Muon_Px[0]"); every other source is a whole branch.
    element_sources: tuple[tuple[str, ...], ...] = ()

    @property
    def datasets(self) -> tuple[DatasetRef, ...]:
        """Every dataset version read, in order (with source_classes: each class's samples)."""
        return tuple(ref for ref, _ in self.dataset_fields())

    def class_samples(self) -> tuple[tuple[SourceClass, Sample], ...]:
        return tuple((c, s) for c in self.source_classes for s in c.all_samples)

    def dataset_fields(self) -> list[tuple[DatasetRef, str]]:
        """Each dataset version read, with the request field that names it."""
        if not self.source_classes:
            return [(self.dataset, "spec.dataset")] if self.dataset is not None else []
        out = []
        for i, c in enumerate(self.source_classes):
            if c.samples:
                out += [(s.dataset, f"spec.source_classes.classes[{i}].samples[{j}].dataset")
                        for j, s in enumerate(c.samples)]
            elif c.dataset is not None:
                out.append((c.dataset, f"spec.source_classes.classes[{i}].dataset"))
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model"]["hyperparameters"] = dict(self.model.hyperparameters)
        data["search"] = self.search.to_dict() if self.search is not None else None
        data["source_classes"] = [dict(dataset=asdict(c.dataset) if c.dataset is not None else None,
                                       class_index=c.class_index, class_name=c.class_name,
                                       samples=[s.to_dict() for s in c.samples]) for c in self.source_classes]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingSpec":
        d = dict(data)
        ds = d.get("dataset")
        publish = d.get("publish")
        return cls(
            features=tuple(d["features"]),
            model=ModelChoice(**d["model"]),
            dataset=DatasetRef(**ds) if ds else None,
            splits=Splits(**d.get("splits", {})),
            jagged_pad_length=int(d.get("jagged_pad_length", 0)),
            label_branch=d.get("label_branch", ""),
            source_classes=tuple(
                SourceClass(DatasetRef(**c["dataset"]) if c.get("dataset") else None, int(c["class_index"]),
                            c.get("class_name", ""), tuple(Sample.from_dict(s) for s in c.get("samples", ())))
                for c in d.get("source_classes", ())
            ),
            weight_branch=d.get("weight_branch", ""),
            seed=int(d.get("seed", 0)),
            metrics=tuple(d.get("metrics", ())),
            publish=PublishTarget(**publish) if publish else None,
            executor=d.get("executor", ""),
            onnx_tolerance=float(d.get("onnx_tolerance", 0.0)),
            timeout_s=float(d.get("timeout_s", 0.0)),
            description=d.get("description", ""),
            search=SearchSpec.from_dict(d["search"]) if d.get("search") else None,
            onnx_relative_tolerance=float(d.get("onnx_relative_tolerance", 0.0)),
            quality_gates=tuple(d.get("quality_gates", ())),
            element_sources=tuple(tuple(e) for e in d.get("element_sources", ())),
        )

    @classmethod
    def from_json(cls, text: str) -> "TrainingSpec":
        return cls.from_dict(json.loads(text))


# --------------------------------------------------------------------------- step 1: the spec alone


def validate_spec(spec: TrainingSpec, *, entry_point_exists=None, max_trials: int = 256,
                  entry_point_modules: tuple[str, ...] | None = None,
                  max_timeout_s: float | None = None) -> TrainingSpec:
    """Check what needs no other service; return the spec with defaults filled in.

    ``entry_point_exists(entry_point) -> bool`` says whether a user model's module can be found
    in the worker environment (None: not checked). ``max_trials`` is the largest search accepted.
    ``entry_point_modules`` are the packages an administrator allows user models from (None: any).
    ``max_timeout_s`` is the longest timeout a spec may ask for (None: any).
    """
    _check_label_and_datasets(spec)
    features = _check_features(spec)
    model = _check_model(spec.model, entry_point_exists, entry_point_modules)
    metrics = _check_metrics(spec.metrics, model.task)
    search = None
    if spec.search is not None:
        search = validate_search(spec.search, builtin=model.builtin, metrics=metrics, max_trials=max_trials)
    if spec.seed < 0 or spec.seed >= 2**32:
        raise InvalidArgument(f"the seed must be in [0, 2**32); got {spec.seed} (0 means: pick one)",
                              field="spec.seed")
    seed = spec.seed or secrets.randbelow(2**31 - 1) + 1
    if spec.jagged_pad_length < 0 or spec.jagged_pad_length > MAX_PAD_LENGTH:
        raise InvalidArgument(f"jagged_pad_length must be in [0, {MAX_PAD_LENGTH}]",
                              field="spec.jagged_pad_length")
    if spec.weight_branch:
        _check_branch_name(spec.weight_branch, "spec.weight_branch")
    for name in ("onnx_tolerance", "onnx_relative_tolerance"):
        value = getattr(spec, name)
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"{name} must be a number >= 0 (0 means 1e-5)", field=f"spec.{name}")
    gates = check_quality_gates(spec.quality_gates, metrics)
    if spec.timeout_s < 0:
        raise InvalidArgument("the timeout must not be negative", field="spec.timeout")
    if max_timeout_s is not None and spec.timeout_s > max_timeout_s:
        raise InvalidArgument(f"the timeout of {spec.timeout_s:g} s is longer than this training service "
                              f"allows ({max_timeout_s:g} s, max_job_timeout_s); ask for at most that, or "
                              "leave it unset for the default", field="spec.timeout")
    if spec.executor not in EXECUTORS:
        raise InvalidArgument(f"unknown executor {spec.executor!r}", field="spec.executor")
    if spec.publish is not None:
        _check_publish(spec.publish)
    if len(spec.description) > 10_000:
        raise InvalidArgument("the description is longer than 10000 characters", field="spec.description")
    return replace(spec, features=features, model=model, metrics=metrics, seed=seed, search=search,
                   onnx_tolerance=spec.onnx_tolerance or DEFAULT_ONNX_TOLERANCE,
                   onnx_relative_tolerance=spec.onnx_relative_tolerance or DEFAULT_ONNX_RELATIVE_TOLERANCE,
                   quality_gates=gates)


@dataclass(frozen=True)
class QualityGate:
    text: str
    split: str
    metric: str
    op: str
    threshold: float

    def passes(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return {">=": value >= self.threshold, "<=": value <= self.threshold,
                ">": value > self.threshold, "<": value < self.threshold}[self.op]


def parse_quality_gate(text: str, where: str = "spec.quality_gates") -> QualityGate:
    match = GATE.fullmatch(text or "") if len(text or "") <= 200 else None
    threshold = float("nan")
    if match is not None:
        try:
            threshold = float(match.group(4))
        except ValueError:
            match = None
    if match is None or not math.isfinite(threshold):
        raise InvalidArgument(f"quality gate {text[:80]!r} is not 'split/metric OP value' with OP one of "
                              ">=, <=, >, < (e.g. 'test/roc_auc >= 0.8')", field=where)
    return QualityGate(" ".join([f"{match.group(1)}/{match.group(2)}", match.group(3), match.group(4)]),
                       match.group(1), match.group(2), match.group(3), threshold)


def check_quality_gates(gates: tuple[str, ...], metrics: tuple[str, ...]) -> tuple[str, ...]:
    """Each gate parsed, on a split the job evaluates and a metric it computes; canonical texts."""
    if len(gates) > MAX_QUALITY_GATES:
        raise InvalidArgument(f"at most {MAX_QUALITY_GATES} quality gates are allowed", field="spec.quality_gates")
    out = []
    for i, text in enumerate(gates):
        where = f"spec.quality_gates[{i}]"
        gate = parse_quality_gate(text, where)
        if gate.split not in GATE_SPLITS:
            raise InvalidArgument(f"quality gate {text!r}: unknown split {gate.split!r}; the metrics are "
                                  f"computed on {' and '.join(GATE_SPLITS)}", field=where)
        if gate.metric not in metrics:
            raise InvalidArgument(f"quality gate {text!r}: the job does not compute {gate.metric!r}; it "
                                  f"computes {', '.join(metrics)} (add it to metrics)", field=where)
        out.append(gate.text)
    return tuple(out)


def _check_label_and_datasets(spec: TrainingSpec) -> None:
    if spec.label_branch and spec.source_classes:
        raise InvalidArgument("set either label_branch or source_classes, not both", field="spec.label")
    if spec.label_branch:
        if spec.dataset is None:
            raise InvalidArgument("the dataset version is required with label_branch",
                                  field="spec.dataset")
        _check_ref(spec.dataset, "spec.dataset")
        _check_branch_name(spec.label_branch, "spec.label_branch")
        if spec.label_branch in spec.features:
            raise InvalidArgument(f"the label branch {spec.label_branch!r} is also a feature; "
                                  "a model must not see its own label", field="spec.label_branch")
        return
    if not spec.source_classes:
        raise InvalidArgument("the label is required: set label_branch (a numeric branch) or "
                              "source_classes (one class per source dataset)", field="spec.label")
    if spec.dataset is not None:
        raise InvalidArgument("leave spec.dataset unset with source_classes: their datasets are used",
                              field="spec.dataset")
    if spec.model.task and spec.model.task != "classification":
        raise InvalidArgument("source_classes give class labels: the task must be classification",
                              field="spec.model.task")
    if len(spec.source_classes) < 2:
        raise InvalidArgument("source_classes needs two or more datasets (e.g. signal and background)",
                              field="spec.source_classes.classes")
    indices = sorted(c.class_index for c in spec.source_classes)
    if indices != list(range(len(indices))):
        raise InvalidArgument(f"class indices must be 0..{len(indices) - 1}, each used once; got {indices}",
                              field="spec.source_classes.classes")
    for i, c in enumerate(spec.source_classes):
        where = f"spec.source_classes.classes[{i}]"
        if c.dataset is not None and c.samples:
            raise InvalidArgument(f"class {c.label}: set either dataset or samples, not both",
                                  field=f"{where}.samples")
        if c.dataset is None and not c.samples:
            raise InvalidArgument(f"class {c.label} names no data: set its dataset, or its samples",
                                  field=f"{where}.samples")
        if c.dataset is not None:
            _check_ref(c.dataset, f"{where}.dataset")
        for j, sample in enumerate(c.samples):
            _check_sample(sample, c, spec.features, f"{where}.samples[{j}]")


def _check_sample(sample: Sample, c: SourceClass, features: tuple[str, ...], where: str) -> None:
    _check_ref(sample.dataset, f"{where}.dataset")
    for feature, source in sample.feature_branches.items():
        if feature not in features:
            raise InvalidArgument(f"class {c.label}, sample {sample.dataset.dataset}: feature_branches maps "
                                  f"{feature!r}, which is not one of the job's feature_branches "
                                  f"({', '.join(features)})", field=f"{where}.feature_branches")
        _check_branch_name(source, f"{where}.feature_branches[{feature}]")
    if sample.generated_events or sample.cross_section or sample.luminosity:
        if sample.event_weight:
            raise InvalidArgument(f"class {c.label}, sample {sample.dataset.dataset}: set either event_weight "
                                  "or cross_section, not both", field=f"{where}.weight")
        numbers = (sample.cross_section, sample.luminosity, sample.generated_events)
        if not all(math.isfinite(x) and x > 0 for x in numbers):
            raise InvalidArgument(f"class {c.label}, sample {sample.dataset.dataset}: the cross-section "
                                  "normalisation needs cross_section, luminosity and generated_events, "
                                  "all > 0 (the weight is cross_section * luminosity / generated_events)",
                                  field=f"{where}.cross_section")
    elif sample.event_weight < 0 or not math.isfinite(sample.event_weight):
        raise InvalidArgument(f"class {c.label}, sample {sample.dataset.dataset}: event_weight must be > 0",
                              field=f"{where}.event_weight")
    if not (math.isfinite(sample.weight) and sample.weight > 0):
        raise InvalidArgument(f"class {c.label}, sample {sample.dataset.dataset}: its weight "
                              f"{sample.weight!r} is not a positive number", field=f"{where}.weight")


def _check_ref(ref: DatasetRef, where: str) -> None:
    if not ref.dataset:
        raise InvalidArgument("the dataset name is empty", field=f"{where}.dataset")
    if not ref.version_id:
        raise InvalidArgument(f"the version_id of dataset {ref.dataset!r} is empty: name the exact "
                              "dataset version to train on", field=f"{where}.version_id")
    check_name(ref.dataset, "dataset name", field=f"{where}.dataset")
    if not VERSION_ID.fullmatch(ref.version_id):
        raise InvalidArgument(f"invalid version_id {ref.version_id[:60]!r}", field=f"{where}.version_id")


def _check_branch_name(name: str, where: str) -> None:
    if not name or len(name) > MAX_BRANCH_NAME or not name.isprintable() or any(c.isspace() for c in name):
        raise InvalidArgument(f"invalid branch name {name[:60]!r}: a branch is named by its full path "
                              f"in the file, 1 to {MAX_BRANCH_NAME} printable characters without "
                              "spaces", field=where)


def _check_features(spec: TrainingSpec) -> tuple[str, ...]:
    if not spec.features:
        raise InvalidArgument("feature_branches is empty: name the branches the model gets as inputs",
                              field="spec.feature_branches")
    if len(spec.features) > MAX_FEATURES:
        raise InvalidArgument(f"at most {MAX_FEATURES} feature branches are allowed",
                              field="spec.feature_branches")
    seen: set[str] = set()
    for i, name in enumerate(spec.features):
        _check_branch_name(name, f"spec.feature_branches[{i}]")
        if name in seen:
            raise InvalidArgument(f"feature branch {name!r} is listed twice", field=f"spec.feature_branches[{i}]")
        seen.add(name)
    return tuple(spec.features)


def _check_model(model: ModelChoice, entry_point_exists, entry_point_modules=None) -> ModelChoice:
    if bool(model.builtin) == bool(model.entry_point):
        raise InvalidArgument(f"choose the model: a built-in kind ({', '.join(BUILTIN_KINDS)}) or a "
                              "user entry point 'package.module:Class'", field="spec.model.kind")
    if model.task not in TASKS:
        raise InvalidArgument("choose the task: classification or regression", field="spec.model.task")
    if model.builtin:
        if model.builtin not in BUILTIN_KINDS:
            raise InvalidArgument(f"unknown built-in model kind {model.builtin!r}; choose one of "
                                  f"{', '.join(BUILTIN_KINDS)}", field="spec.model.builtin")
        params = hp.check(model.builtin, model.hyperparameters, field="spec.model.hyperparameters")
        return replace(model, hyperparameters=params)
    check_entry_point(model.entry_point)
    module = model.entry_point.split(":")[0]
    if entry_point_modules is not None and not any(
            module == allowed or module.startswith(allowed + ".") for allowed in entry_point_modules):
        raise PermissionDenied(
            f"user models from {module!r} are not allowed on this service; an administrator lists the "
            "allowed packages in the training setting entry_point_modules", module=module)
    if entry_point_exists is not None and not entry_point_exists(model.entry_point):
        module = model.entry_point.split(":")[0]
        raise InvalidArgument(f"the module {module!r} of entry point {model.entry_point!r} is not "
                              "installed in the worker environment", field="spec.model.entry_point")
    return replace(model, hyperparameters=hp.plain(model.hyperparameters, "spec.model.hyperparameters"))


def check_entry_point(entry_point: str) -> str:
    """``package.module:Class`` made of Python identifiers only (never reaches a shell)."""
    if len(entry_point) > 200 or not ENTRY_POINT.fullmatch(entry_point):
        shown = entry_point[:60]
        raise InvalidArgument(f"invalid entry point {shown!r}: write it as 'package.module:Class' "
                              "(Python identifiers separated by dots, one colon)",
                              field="spec.model.entry_point")
    return entry_point


def _check_metrics(metrics: tuple[str, ...], task: str) -> tuple[str, ...]:
    allowed = METRICS[task]
    if not metrics:
        return allowed
    for i, name in enumerate(metrics):
        if name not in allowed:
            raise InvalidArgument(f"unknown metric {name!r} for {task}; choose from {', '.join(allowed)}",
                                  field=f"spec.metrics[{i}]")
    return tuple(dict.fromkeys(metrics))


def _check_publish(publish: PublishTarget) -> None:
    check_name(publish.model, "registry model name", field="spec.publish.model_type.model")
    if not SEMVER.fullmatch(publish.model_type_version or ""):
        raise InvalidArgument(f"the model type version must be MAJOR.MINOR.PATCH; got "
                              f"{publish.model_type_version[:40]!r}", field="spec.publish.model_type.version")


# --------------------------------------------------------------------------- step 2: against the data


NUMERIC_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64"}


@dataclass(frozen=True)
class BranchInfo:
    name: str
    dtype: str  # numpy name, "" when not numeric
    layout: str  # "flat", "jagged", "fixed"


@dataclass(frozen=True)
class DatasetInfo:
    """What the data service says about one dataset version (from GetDatasetVersion)."""

    dataset: str
    version_id: str
    content_hash: str
    branches: Mapping[str, BranchInfo]
    splits: Mapping[str, int]  # split name -> entry count


def check_against_data(spec: TrainingSpec, infos: Mapping[tuple[str, str], DatasetInfo],
                       splits_named: tuple[bool, bool, bool] = (False, False, False)) -> TrainingSpec:
    """Check branches and splits against the versions; returns the spec pinned to content hashes.

    ``splits_named`` says whether train / validation / test were named explicitly (an explicitly
    named validation split must exist; an implicit one is skipped when the dataset has none).
    """
    use_validation = True
    samples = [s for _, s in spec.class_samples()] if spec.source_classes else [None]
    classes = [c for c, _ in spec.class_samples()] if spec.source_classes else [None]
    shapes: dict[str, tuple[str, str]] = {}  # feature -> (one value or padded, the first sample's source)
    elements: list[tuple[str, ...]] = []
    for (ref, where), sample, source_class in zip(spec.dataset_fields(), samples, classes):
        info = infos[(ref.dataset, ref.version_id)]
        if ref.content_hash and info.content_hash and ref.content_hash != info.content_hash:
            raise InvalidArgument(
                f"dataset {ref.dataset} version {ref.version_id} has content hash {info.content_hash}, "
                f"not {ref.content_hash} as requested", field=f"{where}.content_hash")
        read_elements: list[str] = []
        elements.append(())
        for j, name in enumerate(spec.features):
            shape = _check_feature(spec, info, name, j, sample, source_class, where)
            source = sample.source(name) if sample is not None else name
            if resolve_source(info.branches, source)[1] is not None:
                read_elements.append(source)
            elements[-1] = tuple(dict.fromkeys(read_elements))
            reads = f"{ref.dataset} reads it as {sample.source(name) if sample else name!r}"
            first = shapes.setdefault(name, (shape, reads))
            if first[0] != shape:
                raise InvalidArgument(
                    f"feature {name!r} is one value per event in one sample and a padded jagged branch in "
                    f"another ({first[1]}; {reads}): map it to the same kind of branch in every sample",
                    field=f"spec.feature_branches[{j}]")
        if spec.label_branch:
            branch = _branch(info, spec.label_branch, "spec.label_branch")
            if branch.layout != "flat":
                raise InvalidArgument(f"the label branch {spec.label_branch!r} holds several values per "
                                      "event; the label must be one number per event", field="spec.label_branch")
        if spec.weight_branch:
            branch = _branch(info, spec.weight_branch, "spec.weight_branch")
            if branch.layout != "flat":
                raise InvalidArgument(f"the weight branch {spec.weight_branch!r} must be one number per "
                                      "event", field="spec.weight_branch")
        if not info.splits:
            raise InvalidArgument(
                f"dataset {ref.dataset} version {ref.version_id} is not split: derive a split version "
                "(DeriveDatasetVersion with train/validation/test fractions) and train on that",
                field=f"{where}.version_id")
        for (name, split), named, what in zip(
                (("train", spec.splits.train), ("validation", spec.splits.validation), ("test", spec.splits.test)),
                splits_named, ("train", "validation", "test")):
            count = info.splits.get(split, 0)
            if count > 0:
                continue
            if what == "validation" and not named and spec.search is None:
                use_validation = False
                continue
            if what == "validation" and spec.search is not None and split not in info.splits:
                raise InvalidArgument(
                    f"a search ranks its trials on the validation split, but dataset {ref.dataset} version "
                    f"{ref.version_id} has no split {split!r} (splits: {', '.join(sorted(info.splits))})",
                    field=f"spec.splits.{name}")
            state = "is empty" if split in info.splits else "does not exist"
            raise InvalidArgument(
                f"the {what} split {split!r} of dataset {ref.dataset} version {ref.version_id} {state} "
                f"(splits: {', '.join(sorted(info.splits)) or 'none'})", field=f"spec.splits.{name}")
    for i, text in enumerate(spec.quality_gates):
        if not use_validation and parse_quality_gate(text).split == "validation":
            raise InvalidArgument(f"quality gate {text!r} is on the validation split, which the dataset "
                                  "does not have; gate on the test split, or name a validation split",
                                  field=f"spec.quality_gates[{i}]")

    def pin(ref: DatasetRef) -> DatasetRef:
        return replace(ref, content_hash=infos[(ref.dataset, ref.version_id)].content_hash)

    if spec.source_classes:
        out = replace(spec, source_classes=tuple(
            replace(c, dataset=pin(c.dataset) if c.dataset is not None else None,
                    samples=tuple(replace(s, dataset=pin(s.dataset)) for s in c.samples))
            for c in spec.source_classes))
    else:
        out = replace(spec, dataset=pin(spec.dataset))
    return replace(out, splits=replace(spec.splits, use_validation=use_validation),
                   element_sources=tuple(elements))


def input_count(spec: TrainingSpec, infos: Mapping[tuple[str, str], DatasetInfo]) -> int:
    """Model inputs (ONNX columns) of a spec checked against the data: 1 per feature read as one
    value per event, 2 * jagged_pad_length per padded jagged one (values and mask)."""
    ref = spec.datasets[0]
    info = infos[(ref.dataset, ref.version_id)]
    sample = spec.class_samples()[0][1] if spec.source_classes else None
    count = 0
    for name in spec.features:
        branch, index = resolve_source(info.branches, sample.source(name) if sample is not None else name)
        padded = index is None and info.branches[branch].layout == "jagged"
        count += 2 * spec.jagged_pad_length if padded else 1
    return count


def resolve_source(branches: Mapping[str, Any], source: str) -> tuple[str, int | None]:
    """What ``source`` reads: (branch, None) for a whole branch, (branch, index) for one element of a
    jagged branch ("Muon_Px[0]"). A branch whose own name looks like an element wins."""
    if source in branches:
        return source, None
    match = ELEMENT.fullmatch(source)
    if match is not None and match.group(1) in branches:
        return match.group(1), int(match.group(2))
    return source, None


def _check_feature(spec: TrainingSpec, info: DatasetInfo, name: str, j: int, sample: Sample | None,
                   source_class: SourceClass | None, where: str) -> str:
    """Check one feature in one dataset; returns "one" (one value per event) or "padded"."""
    mapped = sample is not None and name in sample.feature_branches
    source = sample.source(name) if sample is not None else name
    field_name = f"{where[:-len('.dataset')]}.feature_branches[{name}]" if mapped else f"spec.feature_branches[{j}]"
    branch_name, index = resolve_source(info.branches, source)
    if branch_name not in info.branches and sample is not None:
        element = ELEMENT.fullmatch(source)
        missing = element.group(1) if element is not None else source
        shown = sorted(info.branches)
        listed = ", ".join(shown[:100]) + (f", ... ({len(shown) - 100} more)" if len(shown) > 100 else "")
        close = difflib.get_close_matches(missing, shown, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        reads = f"maps feature {name!r} to {source!r}" if mapped else f"reads feature {name!r} by its own name"
        raise InvalidArgument(
            f"class {source_class.label}: sample {info.dataset} version {info.version_id} has no branch "
            f"{missing!r}{hint}; the class {reads}. Its branches: {listed or 'none'}. Map the feature "
            "to one of them in the sample's feature_branches", field=field_name)
    branch = _branch(info, branch_name, field_name)
    what = f"feature branch {source!r}" if not mapped else f"branch {source!r} (feature {name!r})"
    if index is not None:
        if branch.layout != "jagged":
            raise InvalidArgument(f"{what}: {branch_name!r} is {branch.layout}, not jagged; an element "
                                  "[i] can be taken of a jagged branch only", field=field_name)
        if index >= MAX_PAD_LENGTH:
            raise InvalidArgument(f"{what}: the element index must be below {MAX_PAD_LENGTH}", field=field_name)
        return "one"
    if branch.layout == "jagged" and spec.jagged_pad_length == 0:
        raise InvalidArgument(
            f"{what} is jagged (a variable number of values per event); set jagged_pad_length to pad "
            f"it to a fixed length, take one element ('{branch_name}[0]'), or choose a flat branch",
            field=field_name)
    if branch.layout == "fixed":
        raise InvalidArgument(f"{what} is a fixed-size array; only flat and jagged branches are supported "
                              "as features", field=field_name)
    return "padded" if branch.layout == "jagged" else "one"


def _branch(info: DatasetInfo, name: str, field_name: str) -> BranchInfo:
    branch = info.branches.get(name)
    if branch is None:
        close = [b for b in info.branches if b.lower() == name.lower()]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidArgument(f"dataset {info.dataset} version {info.version_id} has no branch "
                              f"{name!r}{hint}", field=field_name)
    if branch.dtype not in NUMERIC_DTYPES:
        raise InvalidArgument(f"branch {name!r} is not numeric ({branch.dtype or 'no numeric type'}); "
                              "features, labels and weights must be numbers", field=field_name)
    return branch
