"""Alerts: fired and resolved by the service, recorded in the store, fanned out to watchers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from .domain import Alert, AlertKind, AlertState, FeatureDrift, Severity, utcnow
from .metrics import InferenceMetrics
from .store import InferenceStore


class AlertBook:
    def __init__(self, store: InferenceStore, metrics: InferenceMetrics) -> None:
        self._store = store
        self._metrics = metrics
        self._firing: dict[str, Alert] = {a.key: a for a in store.alerts()
                                          if a.state == AlertState.FIRING}
        self._watchers: set[asyncio.Queue] = set()
        for a in self._firing.values():
            self._metrics.alerts_firing.labels(a.deployment, a.kind.value).inc()

    def firing(self) -> list[Alert]:
        return sorted(self._firing.values(), key=lambda a: a.fire_time)

    def is_firing(self, key: str) -> bool:
        return key in self._firing

    def fire(self, key: str, kind: AlertKind, severity: Severity, summary: str, *,
             deployment: str = "", model: str = "", version: str = "",
             feature_drift: FeatureDrift | None = None) -> Alert | None:
        """Fires the alert for ``key`` unless it is already firing."""
        if key in self._firing:
            return None
        alert = Alert(alert_id=f"alert-{uuid.uuid4().hex[:16]}", kind=kind, severity=severity,
                      deployment=deployment, model=model, version=version, summary=summary,
                      feature_drift=feature_drift, key=key)
        self._firing[key] = alert
        self._store.save_alert(alert)
        self._metrics.alerts_fired.labels(deployment, kind.value).inc()
        self._metrics.alerts_firing.labels(deployment, kind.value).inc()
        self._publish(alert)
        return alert

    def resolve(self, key: str) -> Alert | None:
        alert = self._firing.pop(key, None)
        if alert is None:
            return None
        alert = alert.model_copy(update={"state": AlertState.RESOLVED, "resolve_time": utcnow()})
        self._store.save_alert(alert)
        self._metrics.alerts_firing.labels(alert.deployment, alert.kind.value).dec()
        self._publish(alert)
        return alert

    def resolve_prefix(self, prefix: str) -> None:
        for key in [k for k in self._firing if k.startswith(prefix)]:
            self.resolve(key)

    def list(self, deployment: str = "", min_severity: int = 0, state: AlertState | None = None,
             start: datetime | None = None, end: datetime | None = None) -> list[Alert]:
        out = []
        for a in self._store.alerts():  # newest first
            if deployment and a.deployment != deployment:
                continue
            if a.severity < min_severity or (state is not None and a.state != state):
                continue
            if (start and a.fire_time < start) or (end and a.fire_time >= end):
                continue
            out.append(a)
        return out

    async def watch(self, include_firing: bool) -> AsyncIterator[Alert]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=10000)
        self._watchers.add(queue)
        try:
            if include_firing:
                for alert in self.firing():
                    yield alert
            while True:
                yield await queue.get()
        finally:
            self._watchers.discard(queue)

    def _publish(self, alert: Alert) -> None:
        for queue in list(self._watchers):
            try:
                queue.put_nowait(alert)
            except asyncio.QueueFull:
                pass
