"""Drift watching for every deployment: its monitor (one per served version and thresholds), the
samples the gateway reports into it, an evaluation every tick when due, and the DRIFT alerts and
drift series that follow.

No gRPC here. The watch reads the deployments through a read-only view (the manager's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from ..alerts import AlertBook
from ..domain import AlertKind, Deployment, DeploymentUsage, DriftReport, Severity
from ..metrics import InferenceMetrics
from .monitor import DriftMonitor

log = logging.getLogger(__name__)


class DriftWatch:
    def __init__(self, deployments: Mapping[str, Deployment], alerts: AlertBook,
                 metrics: InferenceMetrics, tick_s: float) -> None:
        self._deployments, self._alerts, self._metrics = deployments, alerts, metrics
        self._tick_s = tick_s
        self._monitors: dict[str, DriftMonitor] = {}

    def monitor(self, dep: Deployment) -> DriftMonitor | None:
        """The deployment's monitor (a new one when the served version or the thresholds
        changed); None while nothing is served."""
        if dep.current is None:
            return None
        monitor = self._monitors.get(dep.name)
        if monitor is None or monitor.version != dep.current.version or monitor.thresholds != dep.thresholds:
            monitor = DriftMonitor(dep.name, dep.model, dep.current.version, dep.current.signature,
                                   dep.current.references, dep.thresholds)
            self._monitors[dep.name] = monitor
        return monitor

    def watches(self, dep: Deployment) -> bool:
        """The deployment's traffic feeds a drift window (the gateway then sends samples)."""
        monitor = self.monitor(dep)
        return monitor is not None and monitor.window is not None

    def observe(self, dep: Deployment, usage: DeploymentUsage) -> None:
        """The samples of what the gateway served, into the window; samples of a version that is
        no longer served (a switch since) are dropped."""
        if not usage.samples:
            return
        monitor = self.monitor(dep)
        if monitor is None or monitor.window is None or monitor.version != usage.version:
            return
        for sample in usage.samples:
            monitor.observe(sample.inputs, sample.outputs)

    def report(self, dep: Deployment) -> DriftReport:
        monitor = self.monitor(dep)
        if monitor is None:
            return DriftReport(deployment=dep.name, model=dep.model, thresholds=dep.thresholds,
                               window_size=dep.thresholds.window_size,
                               unavailable_reason="no version is served yet")
        return monitor.report()

    def forget(self, name: str) -> None:
        """The deployment is gone."""
        self._monitors.pop(name, None)

    def resolve_alerts(self, name: str) -> None:
        """The deployment serves another version: its drift alerts are about the old one."""
        self._alerts.resolve_prefix(f"{name}/drift/")

    def evaluate(self, dep: Deployment) -> DriftReport | None:
        """Computes the report when due and fires/resolves the deployment's drift alerts."""
        monitor = self.monitor(dep)
        if monitor is None or not monitor.active or not monitor.due():
            return None
        report = monitor.report()
        m = self._metrics
        for f in report.features:
            key = f"{dep.name}/drift/{f.kind.value}/{f.tensor}[{f.index}]"
            labels = (dep.name, f.kind.value, f.tensor, str(f.index))
            if not f.available:
                continue
            m.drift_psi.labels(*labels).set(f.psi)
            m.drift_ks.labels(*labels).set(f.ks_statistic)
            if f.psi_exceeded or f.ks_exceeded:
                what = f"{'input' if f.kind.value == 'INPUT' else 'output'} {f.tensor}[{f.index}]"
                if f.feature:
                    what += f" ({f.feature})"
                scores = []
                if f.psi_exceeded:
                    scores.append(f"PSI {f.psi:.3g} > {report.thresholds.psi:g}")
                if f.ks_exceeded:
                    scores.append(f"KS {f.ks_statistic:.3g} > {report.thresholds.ks_statistic:g}")
                self._alerts.fire(key, AlertKind.DRIFT, Severity.WARNING,
                                  f"{dep.name}: {what} {', '.join(scores)}", deployment=dep.name,
                                  model=dep.model, version=report.version, feature_drift=f)
            else:
                self._alerts.resolve(key)
        return report

    async def watch(self) -> None:
        """Evaluates every deployment each ``tick_s`` (a monitor evaluates when it is due)."""
        while True:
            await asyncio.sleep(self._tick_s)
            for dep in list(self._deployments.values()):
                try:
                    self.evaluate(dep)
                except Exception:  # noqa: BLE001 - keep watching the others
                    log.exception("drift evaluation of %s failed", dep.name)
