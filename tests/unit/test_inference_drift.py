"""PSI and KS against reference histograms, on distributions with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from beamops.inference.domain import FeatureReference, Signature, TensorSig, Thresholds
from beamops.inference.drift import stats
from beamops.inference.drift.monitor import DriftMonitor, FeatureKind, features_for

F32 = 11


def test_psi_of_a_known_two_bin_shift():
    # reference 50/50, live 90/10: PSI = 0.4 ln(1.8) + (-0.4) ln(0.2)
    samples = np.array([0.25] * 90 + [0.75] * 10)
    expected = 0.4 * math.log(1.8) - 0.4 * math.log(0.2)
    assert stats.psi([0, 0.5, 1], [50, 50], samples) == pytest.approx(expected, rel=1e-9)


def test_psi_is_zero_for_the_same_proportions_and_counts_outliers_in_the_end_bins():
    assert stats.psi([0, 1, 2], [1, 3], np.array([0.5, 1.5, 1.5, 1.5])) == pytest.approx(0.0)
    assert stats.psi([0, 1, 2], [1, 3], np.array([-5.0, 7, 9, 11])) == pytest.approx(0.0)


def test_ks_against_a_uniform_reference():
    edges, counts = np.linspace(0, 1, 11), np.ones(10)
    d, p = stats.ks(edges, counts, np.linspace(0, 0.5, 2001))  # all mass in the lower half
    assert d == pytest.approx(0.5, abs=1e-3) and p < 1e-6
    rng = np.random.default_rng(0)
    d, p = stats.ks(edges, counts, rng.uniform(size=5000))
    assert d < 0.03 and p > 0.01


def test_ks_p_value_matches_the_kolmogorov_distribution():
    # P(sqrt(n) D > 1.358) ~ 0.05 for large n
    assert stats.ks_p_value(1.358 / math.sqrt(10000), 10000) == pytest.approx(0.05, abs=0.003)
    assert stats.ks_p_value(0.0, 100) == 1.0


def test_bad_reference_is_refused():
    with pytest.raises(ValueError):
        stats.psi([0, 1], [1, 2], np.zeros(3))
    with pytest.raises(ValueError):
        stats.psi([0, 1], [0], np.zeros(3))


def test_window_keeps_only_the_most_recent_rows():
    window = stats.Window(capacity=5, width=2)
    window.append(np.arange(8).reshape(4, 2))
    window.append(np.arange(100, 106).reshape(3, 2))
    assert window.size == 5
    assert sorted(window.values()[:, 0].tolist()) == [4, 6, 100, 102, 104]


def _ref(name: str) -> FeatureReference:
    return FeatureReference(feature=name, bin_edges=tuple(np.linspace(-4, 4, 41)),
                            counts=tuple(np.histogram(np.random.default_rng(1).normal(size=20000),
                                                      np.linspace(-4, 4, 41))[0].astype(float)),
                            count=20000)


SIG = Signature(inputs=(TensorSig(name="x", dtype=F32, shape=(-1, 3)),),
                outputs=(TensorSig(name="y", dtype=F32, shape=(-1, 2)),))


def test_references_map_by_tensor_name_or_in_order():
    feats = features_for(SIG, (_ref("pt"), _ref("x[2]"), _ref("eta"), _ref("output:y[1]")))
    by_slot = {(f.kind, f.tensor, f.index): f for f in feats}
    assert by_slot[(FeatureKind.INPUT, "x", 0)].name == "pt"
    assert by_slot[(FeatureKind.INPUT, "x", 1)].name == "eta"
    assert by_slot[(FeatureKind.INPUT, "x", 2)].reference.feature == "x[2]"
    assert by_slot[(FeatureKind.OUTPUT, "y", 0)].reference is None
    assert by_slot[(FeatureKind.OUTPUT, "y", 1)].reference.feature == "output:y[1]"


def test_monitor_reports_unavailable_without_reference_and_drift_on_shift():
    none = DriftMonitor("d", "m", "1.0", SIG, (), Thresholds())
    report = none.report()
    assert not report.available and "no reference distributions" in report.unavailable_reason

    monitor = DriftMonitor("d", "m", "1.0", SIG, (_ref("a"), _ref("b"), _ref("c")),
                           Thresholds(window_size=2000, min_samples=100))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3))
    monitor.observe({"x": x}, {"y": np.zeros((50, 2))})
    few = monitor.report()
    assert few.available and not any(f.available for f in few.features)
    assert "fewer than min_samples" in few.features[0].unavailable_reason
    x = rng.normal(size=(1000, 3))
    x[:, 1] += 2.0
    monitor.observe({"x": x}, {"y": np.zeros((1000, 2))})
    report = monitor.report()
    flags = {f.index: (f.psi_exceeded, f.ks_exceeded) for f in report.features if f.available}
    assert flags == {0: (False, False), 1: (True, True), 2: (False, False)} and report.drifting


def test_monitor_copies_raw_samples_in_batches_keeping_rows_times_and_order():
    from beamops.inference.drift import monitor as drift_monitor
    from beamops.inference.domain import RawTensor

    monitor = DriftMonitor("d", "m", "1.0", SIG, (_ref("a"), _ref("b"), _ref("c"), _ref("output:y[1]")),
                           Thresholds(window_size=100, min_samples=1))

    def raw(name, array):
        return RawTensor(name, F32, array.shape, np.ascontiguousarray(array, np.float32).tobytes())

    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = -np.arange(8, dtype=np.float32).reshape(4, 2)
    monitor.observe([raw("x", x[:3])], [raw("y", y[:3])])
    monitor.observe([raw("x", x[3:])], [])  # this request asked for no monitored output
    assert monitor.window.size == 0  # nothing copied on the Predict path yet
    report = monitor.report()  # copies what is pending first
    assert report.window_samples == 4
    values = monitor.window.values()
    assert values[:, :3].tolist() == x.tolist()
    y_column = [f.tensor for f in monitor.features].index("y") + 1  # y[1]
    assert values[:3, y_column].tolist() == y[:3, 1].tolist() and np.isnan(values[3, y_column])
    start, end = monitor.window.time_span()
    assert start <= end

    for _ in range(drift_monitor.FLUSH_EVERY):  # enough pending requests copy themselves
        monitor.observe([raw("x", x[:1])], [raw("y", y[:1])])
    assert monitor.window.size == 100  # the window is full of the newest rows: all x[0]
    assert monitor.window.values()[:, :3].tolist() == [x[0].tolist()] * 100

    fresh = DriftMonitor("d", "m", "1.0", SIG, (_ref("a"),), Thresholds(window_size=100))
    big = np.zeros((drift_monitor.FLUSH_BYTES // 12 + 1, 3), np.float32)
    fresh.observe([raw("x", big)], [])  # a large request is not kept pending
    assert fresh.window.size == 100


def test_window_takes_one_arrival_time_per_row():
    window = stats.Window(capacity=4, width=1)
    window.append(np.arange(3.0).reshape(3, 1), now=np.array([1.0, 2.0, 3.0]))
    window.append(np.array([[9.0], [10.0]]), now=5.0)
    assert window.size == 4 and window.time_span() == (2.0, 5.0)
