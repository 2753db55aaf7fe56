"""Protobuf <-> domain conversion for the training service (the only place that knows both)."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from beamops.common.v1 import lineage_pb2
from beamops.training.v1 import job_pb2

from .search import SearchParameter, SearchSpec
from .spec import (DatasetRef, ModelChoice, PublishTarget, Sample, SourceClass, Splits, TrainingSpec)
from .store import EventRecord, JobRecord

BUILTIN_NAMES = {
    job_pb2.BUILTIN_MODEL_GRADIENT_BOOSTED_TREES: "gradient_boosted_trees",
    job_pb2.BUILTIN_MODEL_MLP: "mlp",
    job_pb2.BUILTIN_MODEL_XGBOOST: "xgboost",
    job_pb2.BUILTIN_MODEL_LIGHTGBM: "lightgbm",
}
BUILTIN_ENUMS = {v: k for k, v in BUILTIN_NAMES.items()}
TASK_NAMES = {job_pb2.TASK_CLASSIFICATION: "classification", job_pb2.TASK_REGRESSION: "regression"}
TASK_ENUMS = {v: k for k, v in TASK_NAMES.items()}
EXECUTOR_NAMES = {job_pb2.EXECUTOR_UNSPECIFIED: "", job_pb2.EXECUTOR_LOCAL: "local",
                  job_pb2.EXECUTOR_DASK: "dask"}
EXECUTOR_ENUMS = {v: k for k, v in EXECUTOR_NAMES.items()}
STATE_ENUMS = {"QUEUED": job_pb2.JOB_STATE_QUEUED, "RUNNING": job_pb2.JOB_STATE_RUNNING,
               "SUCCEEDED": job_pb2.JOB_STATE_SUCCEEDED, "FAILED": job_pb2.JOB_STATE_FAILED,
               "CANCELLED": job_pb2.JOB_STATE_CANCELLED, "REJECTED": job_pb2.JOB_STATE_REJECTED,
               "": job_pb2.JOB_STATE_UNSPECIFIED}
STATE_NAMES = {v: k for k, v in STATE_ENUMS.items()}
ALGORITHM_NAMES = {job_pb2.SEARCH_ALGORITHM_GRID: "grid", job_pb2.SEARCH_ALGORITHM_RANDOM: "random"}
ALGORITHM_ENUMS = {v: k for k, v in ALGORITHM_NAMES.items()}
DIRECTION_NAMES = {job_pb2.OBJECTIVE_DIRECTION_MAXIMIZE: "maximize",
                   job_pb2.OBJECTIVE_DIRECTION_MINIMIZE: "minimize"}
DIRECTION_ENUMS = {v: k for k, v in DIRECTION_NAMES.items()}
LOG_LEVELS = {"DEBUG": job_pb2.LOG_LEVEL_DEBUG, "INFO": job_pb2.LOG_LEVEL_INFO,
              "WARNING": job_pb2.LOG_LEVEL_WARNING, "ERROR": job_pb2.LOG_LEVEL_ERROR}
DIFFERENCE_KINDS = {"environment": job_pb2.DIFFERENCE_KIND_ENVIRONMENT,
                    "data_hash": job_pb2.DIFFERENCE_KIND_DATA_HASH, "seed": job_pb2.DIFFERENCE_KIND_SEED,
                    "code": job_pb2.DIFFERENCE_KIND_CODE,
                    "hyperparameters": job_pb2.DIFFERENCE_KIND_HYPERPARAMETERS,
                    "executor": job_pb2.DIFFERENCE_KIND_EXECUTOR}


def _ref(ref: lineage_pb2.DatasetVersionRef) -> DatasetRef | None:
    if not (ref.dataset or ref.version_id):
        return None
    return DatasetRef(ref.dataset, ref.version_id, ref.content_hash)


def spec_from_proto(spec: job_pb2.JobSpec) -> tuple[TrainingSpec, tuple[bool, bool, bool]]:
    """The spec as typed values (not yet validated), and whether each split was named."""
    from beamops.runtime.errors import InvalidArgument

    for where, ref in [("spec.dataset", spec.dataset)] + [
            (f"spec.source_classes.classes[{i}].dataset", c.dataset)
            for i, c in enumerate(spec.source_classes.classes)] + [
            (f"spec.source_classes.classes[{i}].samples[{j}].dataset", s.dataset)
            for i, c in enumerate(spec.source_classes.classes) for j, s in enumerate(c.samples)]:
        if ref.split:
            raise InvalidArgument("leave the dataset's split empty: the splits come from spec.splits",
                                  field=f"{where}.split")
    model = spec.model
    kind = model.WhichOneof("kind")
    builtin = ""
    if kind == "builtin":
        builtin = BUILTIN_NAMES.get(model.builtin, f"unknown ({model.builtin})")
    hyper = json_format.MessageToDict(model.hyperparameters) if model.HasField("hyperparameters") else {}
    publish = None
    if spec.HasField("publish") and (spec.publish.model_type.model or spec.publish.model_type.version):
        publish = PublishTarget(spec.publish.model_type.model, spec.publish.model_type.version,
                                spec.publish.description)
    splits = spec.splits
    typed = TrainingSpec(
        features=tuple(spec.feature_branches),
        model=ModelChoice(builtin=builtin, entry_point=model.entry_point if kind == "entry_point" else "",
                          task=TASK_NAMES.get(model.task, ""), hyperparameters=hyper),
        dataset=_ref(spec.dataset),
        splits=Splits(train=splits.train or "train", validation=splits.validation or "validation",
                      test=splits.test or "test"),
        jagged_pad_length=spec.jagged_pad_length,
        label_branch=spec.label_branch,
        source_classes=tuple(SourceClass(_ref(c.dataset) if c.HasField("dataset") else None, c.class_index,
                                         c.class_name, tuple(sample_from_proto(x) for x in c.samples))
                             for c in spec.source_classes.classes),
        weight_branch=spec.weight_branch,
        seed=spec.seed,
        metrics=tuple(spec.metrics),
        publish=publish,
        executor=EXECUTOR_NAMES.get(spec.executor, "?"),
        onnx_tolerance=spec.onnx_tolerance,
        timeout_s=spec.timeout.ToTimedelta().total_seconds() if spec.HasField("timeout") else 0.0,
        description=spec.description,
        search=search_from_proto(spec.search) if spec.HasField("search") else None,
        onnx_relative_tolerance=spec.onnx_relative_tolerance,
        quality_gates=tuple(spec.quality_gates),
    )
    return typed, (bool(splits.train), bool(splits.validation), bool(splits.test))


def sample_from_proto(sample: job_pb2.Sample) -> Sample:
    xs = sample.cross_section
    return Sample(_ref(sample.dataset) or DatasetRef("", ""), dict(sample.feature_branches),
                  event_weight=sample.event_weight, cross_section=xs.cross_section, luminosity=xs.luminosity,
                  generated_events=xs.generated_events)


def sample_to_proto(sample: Sample) -> job_pb2.Sample:
    out = job_pb2.Sample(dataset=_ref_proto(sample.dataset), feature_branches=dict(sample.feature_branches))
    if sample.generated_events or sample.cross_section or sample.luminosity:
        out.cross_section.CopyFrom(job_pb2.CrossSection(cross_section=sample.cross_section,
                                                        luminosity=sample.luminosity,
                                                        generated_events=sample.generated_events))
    elif sample.event_weight:
        out.event_weight = sample.event_weight
    return out


def search_from_proto(search: job_pb2.SearchSpec) -> SearchSpec:
    params = []
    for p in search.parameters:
        domain = p.WhichOneof("domain")
        if domain == "values":
            params.append(SearchParameter(p.name, values=tuple(json_format.MessageToDict(p.values))))
        elif domain == "range":
            r = p.range
            params.append(SearchParameter(p.name, low=r.low, high=r.high, log_scale=r.log_scale,
                                          integer=r.integer))
        else:  # neither: an empty list of values, refused by validation
            params.append(SearchParameter(p.name, values=()))
    return SearchSpec(algorithm=ALGORITHM_NAMES.get(search.algorithm, ""), parameters=tuple(params),
                      num_trials=search.num_trials, max_parallel_trials=search.max_parallel_trials,
                      objective_metric=search.objective_metric,
                      direction=DIRECTION_NAMES.get(search.direction, ""))


def search_to_proto(search: SearchSpec) -> job_pb2.SearchSpec:
    out = job_pb2.SearchSpec(algorithm=ALGORITHM_ENUMS.get(search.algorithm, 0), num_trials=search.num_trials,
                             max_parallel_trials=search.max_parallel_trials,
                             objective_metric=search.objective_metric,
                             direction=DIRECTION_ENUMS.get(search.direction, 0))
    for p in search.parameters:
        param = out.parameters.add(name=p.name)
        if p.values is not None:
            param.values.extend(list(p.values))
            if not p.values:
                param.values.SetInParent()
        else:
            param.range.CopyFrom(job_pb2.ParameterRange(low=p.low, high=p.high, log_scale=p.log_scale,
                                                        integer=p.integer))
    return out


def _ref_proto(ref: DatasetRef | None, split: str = "") -> lineage_pb2.DatasetVersionRef:
    if ref is None:
        return lineage_pb2.DatasetVersionRef()
    return lineage_pb2.DatasetVersionRef(dataset=ref.dataset, version_id=ref.version_id,
                                         content_hash=ref.content_hash, split=split)


def struct(values: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def spec_to_proto(spec: TrainingSpec) -> job_pb2.JobSpec:
    out = job_pb2.JobSpec(
        splits=job_pb2.DataSplits(train=spec.splits.train, validation=spec.splits.validation,
                                  test=spec.splits.test),
        feature_branches=list(spec.features), jagged_pad_length=spec.jagged_pad_length,
        weight_branch=spec.weight_branch, seed=spec.seed, metrics=list(spec.metrics),
        executor=EXECUTOR_ENUMS.get(spec.executor, 0), onnx_tolerance=spec.onnx_tolerance,
        description=spec.description, onnx_relative_tolerance=spec.onnx_relative_tolerance,
        quality_gates=list(spec.quality_gates),
    )
    if spec.dataset is not None:
        out.dataset.CopyFrom(_ref_proto(spec.dataset))
    if spec.label_branch:
        out.label_branch = spec.label_branch
    else:
        out.source_classes.CopyFrom(job_pb2.SourceClasses(classes=[
            job_pb2.SourceClass(dataset=_ref_proto(c.dataset) if c.dataset is not None else None,
                                class_index=c.class_index, class_name=c.class_name,
                                samples=[sample_to_proto(x) for x in c.samples])
            for c in spec.source_classes]))
    model = out.model
    if spec.model.builtin:
        model.builtin = BUILTIN_ENUMS.get(spec.model.builtin, 0)
    else:
        model.entry_point = spec.model.entry_point
    model.task = TASK_ENUMS.get(spec.model.task, 0)
    model.hyperparameters.CopyFrom(struct(dict(spec.model.hyperparameters)))
    if spec.publish is not None:
        out.publish.model_type.model = spec.publish.model
        out.publish.model_type.version = spec.publish.model_type_version
        out.publish.description = spec.publish.description
    if spec.timeout_s:
        out.timeout.FromTimedelta(timedelta(seconds=spec.timeout_s))
    if spec.search is not None:
        out.search.CopyFrom(search_to_proto(spec.search))
    return out


def _ts(t: datetime | None) -> timestamp_pb2.Timestamp | None:
    if t is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(t)
    return ts


def code_ref_to_proto(code: dict) -> lineage_pb2.CodeRef:
    if "git" in code:
        return lineage_pb2.CodeRef(git=lineage_pb2.GitSource(**code["git"]))
    if "package" in code:
        return lineage_pb2.CodeRef(package=lineage_pb2.PackageSource(**code["package"]))
    return lineage_pb2.CodeRef()


def environment_to_proto(env: dict) -> lineage_pb2.SoftwareEnvironment:
    return lineage_pb2.SoftwareEnvironment(python_version=env.get("python_version", ""),
                                           platform=env.get("platform", ""),
                                           packages=env.get("packages", {}))


def metric_to_proto(m: dict) -> job_pb2.Metric:
    return job_pb2.Metric(name=m["name"], split=m["split"], value=m["value"], iteration=m.get("iteration", 0))


def progress_to_proto(p: dict) -> job_pb2.Progress:
    return job_pb2.Progress(iteration=p.get("iteration", 0), total_iterations=p.get("total_iterations", 0),
                            fraction=p.get("fraction", 0.0), trials_finished=p.get("trials_finished", 0),
                            trials_total=p.get("trials_total", 0))


def _ts_us(us: int | None) -> timestamp_pb2.Timestamp | None:
    if not us:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(int(us))
    return ts


def trial_to_proto(t: dict) -> job_pb2.Trial:
    return job_pb2.Trial(index=t["index"], hyperparameters=struct(t.get("hyperparameters", {})),
                         state=STATE_ENUMS.get(t.get("state", ""), 0),
                         metrics=[metric_to_proto(m) for m in t.get("metrics", [])],
                         failure_message=t.get("failure_message", ""), start_time=_ts_us(t.get("start_us")),
                         end_time=_ts_us(t.get("end_us")), best=bool(t.get("best", False)))


def job_to_proto(job: JobRecord) -> job_pb2.Job:
    out = job_pb2.Job(
        job_id=job.job_id, spec=spec_to_proto(job.spec), state=STATE_ENUMS[job.state],
        executor=EXECUTOR_ENUMS.get(job.executor, 0), submitted_by=job.submitted_by,
        submit_time=_ts(job.submit_time), start_time=_ts(job.start_time), end_time=_ts(job.end_time),
        progress=progress_to_proto(job.progress), metrics=[metric_to_proto(m) for m in job.metrics],
        failure_message=job.failure_message, last_event_sequence=job.last_event_sequence,
        cancel_requested_by=job.cancel_requested_by, cancel_reason=job.cancel_reason,
        trials=[trial_to_proto(t) for t in job.trials],
    )
    r = job.result
    if r:
        res = out.result
        params = r.get("parameters")
        if params:
            res.parameters.CopyFrom(lineage_pb2.ParametersRef(model=params["model"], version=params["version"]))
        res.datasets.extend(lineage_pb2.DatasetVersionRef(**d) for d in r.get("datasets", []))
        res.seed = int(r.get("seed", 0))
        res.hyperparameters.CopyFrom(struct(r.get("hyperparameters", {})))
        res.code.CopyFrom(code_ref_to_proto(r.get("code", {})))
        res.environment.CopyFrom(environment_to_proto(r.get("environment", {})))
        if r.get("onnx_check"):
            res.onnx_check.CopyFrom(job_pb2.OnnxCheck(**r["onnx_check"]))
        res.onnx_sha256 = r.get("onnx_sha256", "")
        res.predictions_sha256 = r.get("predictions_sha256", "")
        res.quality_gates.extend(job_pb2.QualityGateCheck(**g) for g in r.get("quality_gates", []))
    if job.reproduces:
        out.reproduces.job_id = job.reproduces
    rep = job.reproduction
    if rep.get("summary"):
        out.reproduction.CopyFrom(job_pb2.ReproductionReport(
            original_job=lineage_pb2.JobRef(job_id=rep["original_job"]),
            reproduced=rep["reproduced"], metrics_agree=rep["metrics_agree"],
            predictions_agree=rep["predictions_agree"], tolerance=rep["tolerance"],
            metrics=[job_pb2.MetricComparison(**m) for m in rep["metrics"]],
            events_compared=rep["events_compared"], max_prediction_difference=rep["max_prediction_difference"],
            events_beyond_tolerance=rep["events_beyond_tolerance"],
            predictions_identical=rep["predictions_identical"],
            differences=[job_pb2.Difference(kind=DIFFERENCE_KINDS.get(d["kind"], 0), field=d["field"],
                                            original=d["original"], reproduced=d["reproduced"])
                         for d in rep["differences"]],
            summary=rep["summary"]))
    return out


def event_to_proto(e: EventRecord) -> job_pb2.JobEvent:
    out = job_pb2.JobEvent(job_id=e.job_id, sequence=e.sequence, time=_ts(e.time))
    p = e.payload
    if e.kind == "state_change":
        out.state_change.CopyFrom(job_pb2.StateChange(previous_state=STATE_ENUMS.get(p.get("previous", ""), 0),
                                                      state=STATE_ENUMS[p["state"]], message=p.get("message", "")))
    elif e.kind == "progress":
        out.progress.CopyFrom(progress_to_proto(p))
    elif e.kind == "metric":
        out.metric.CopyFrom(job_pb2.MetricReported(metric=metric_to_proto(p),
                                                   trial_index=p.get("trial_index", -1)))
    elif e.kind == "log_line":
        out.log_line.CopyFrom(job_pb2.LogLine(level=LOG_LEVELS.get(p.get("level", "INFO"), 0),
                                              text=p.get("text", ""), trial_index=p.get("trial_index", -1)))
    elif e.kind == "trial_finished":
        out.trial_finished.CopyFrom(job_pb2.TrialFinished(trial=trial_to_proto(p)))
    return out


def states_from_proto(states) -> tuple[str, ...]:
    return tuple(STATE_NAMES[s] for s in states if s in STATE_NAMES and STATE_NAMES[s])
