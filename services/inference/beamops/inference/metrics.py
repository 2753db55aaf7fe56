"""Per-deployment Prometheus metrics, on the server's registry (RunningServer.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .domain import DeploymentUsage

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class InferenceMetrics:
    """The service's metrics. Built before the server exists (the servicer needs them), on a
    registry of their own; :meth:`register_into` adds them to the server's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.requests = Counter("beamops_inference_requests", "Predict requests served",
                                ["deployment", "version"], registry=registry)
        self.errors = Counter("beamops_inference_errors", "Predict requests that failed",
                              ["deployment", "code"], registry=registry)
        self.latency = Histogram("beamops_inference_latency_seconds",
                                 "Predict time in the service, Triton included",
                                 ["deployment"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram("beamops_inference_batch_size", "Rows per Predict request",
                                    ["deployment"], buckets=BATCH_BUCKETS, registry=registry)
        self.coalesced = Counter("beamops_inference_coalesced_requests",
                                 "Predict requests sent to Triton together with others in one call",
                                 ["deployment"], registry=registry)
        self.drift_psi = Gauge("beamops_inference_drift_psi", "PSI of a feature over the window",
                               ["deployment", "kind", "tensor", "index"], registry=registry)
        self.drift_ks = Gauge("beamops_inference_drift_ks_statistic",
                              "KS statistic of a feature over the window",
                              ["deployment", "kind", "tensor", "index"], registry=registry)
        self.alerts_firing = Gauge("beamops_inference_alerts_firing", "Alerts firing now",
                                   ["deployment", "kind"], registry=registry)
        self.alerts_fired = Counter("beamops_inference_alerts_fired", "Alerts fired",
                                    ["deployment", "kind"], registry=registry)
        self.triton_restarts = Counter("beamops_inference_triton_restarts",
                                       "Times the bundled Triton was restarted", registry=registry)
        self.gateway_restarts = Counter("beamops_inference_gateway_restarts",
                                        "Times beamops-gateway was restarted after it exited",
                                        registry=registry)
        self.model_restarts = Counter("beamops_inference_model_restarts",
                                      "Times a deployment's model was reloaded in Triton because "
                                      "the process running its code died", ["deployment"],
                                      registry=registry)

    def record_usage(self, deployment: str, usage: DeploymentUsage) -> None:
        """What the gateway served for ``deployment``, into the series Predict feeds."""
        if usage.requests:
            self.requests.labels(deployment, usage.version).inc(usage.requests)
        for reason, count in usage.errors:
            if count:
                self.errors.labels(deployment, reason).inc(count)
        if usage.latency_s:
            latency = self.latency.labels(deployment)
            for seconds in usage.latency_s:
                latency.observe(seconds)
        if usage.coalesced:
            self.coalesced.labels(deployment).inc(usage.coalesced)
        if usage.batch_rows:
            batch_size = self.batch_size.labels(deployment)
            for rows in usage.batch_rows:
                batch_size.observe(rows)

    def register_into(self, registry: CollectorRegistry) -> None:
        for collector in (self.requests, self.errors, self.latency, self.batch_size, self.coalesced,
                          self.drift_psi,
                          self.drift_ks, self.alerts_firing, self.alerts_fired, self.triton_restarts,
                          self.gateway_restarts, self.model_restarts):
            registry.register(collector)
