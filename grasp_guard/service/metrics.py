"""Prometheus metrics of one service app, in the app's own registry (never the global one)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ServiceMetrics:
    """The service's counters, gauges and histograms, registered in a private registry.

    Attributes:
        queue_depth: requests admitted and not yet answered.
        uploads_arriving: uploads whose bodies are being read (before admission).
        crops_pending: face crops waiting for the device.
        batch_size: crops per optimisation batch.
        queue_wait: seconds a crop waited between its request's submission and its batch.
        optimise_seconds: wall seconds of each batched optimisation.
        request_seconds: wall seconds of each ``POST /v1/protect``, answered or failed.
        images: images answered, by outcome (``protected``, ``unchanged``).
        faces: face crops protected.
        errors: error answers, by kind (the ``kind`` of the JSON error body).
        admitted: requests whose crops were queued for the device.
        refused: requests answered 429, by reason (``deadline``: they would not finish in
            time; ``queue_full``: every request slot was taken; ``uploads_full``: every
            upload slot was).
        expected_seconds: at each admission decision, how long the request's crops were
            expected to take until optimised (queue ahead, batching, its own work).
        backlog_seconds: expected seconds until the device has optimised every waiting crop.
        crop_seconds: the estimated seconds per crop in a full batch, by crop size and
            preset (of the latest timed group), from measured batch times.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("grasp_queue_depth", "Requests admitted and not yet answered.",
                                 registry=r)
        self.uploads_arriving = Gauge("grasp_uploads_arriving",
                                      "Uploads whose bodies are being read.", registry=r)
        self.crops_pending = Gauge("grasp_crops_pending", "Face crops waiting for the device.",
                                   registry=r)
        self.batch_size = Histogram("grasp_batch_size", "Face crops per optimisation batch.",
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256),
                                    registry=r)
        self.queue_wait = Histogram("grasp_queue_wait_seconds",
                                    "Seconds a face crop waited for its optimisation batch.",
                                    buckets=_SECONDS, registry=r)
        self.optimise_seconds = Histogram("grasp_optimise_seconds",
                                          "Wall seconds of each batched optimisation.",
                                          buckets=_SECONDS, registry=r)
        self.request_seconds = Histogram("grasp_request_seconds",
                                         "Wall seconds of each protect request.",
                                         buckets=_SECONDS, registry=r)
        self.images = Counter("grasp_images", "Images answered, by outcome.", ["outcome"],
                              registry=r)
        self.faces = Counter("grasp_faces", "Face crops protected.", registry=r)
        self.errors = Counter("grasp_errors", "Error answers, by kind.", ["kind"], registry=r)
        self.admitted = Counter("grasp_admitted", "Requests whose crops were queued.",
                                registry=r)
        self.refused = Counter("grasp_refused", "Requests answered 429, by reason.",
                               ["reason"], registry=r)
        self.expected_seconds = Histogram(
            "grasp_expected_seconds",
            "Expected seconds until a request's crops are optimised, at its admission decision.",
            buckets=_SECONDS, registry=r)
        self.backlog_seconds = Gauge(
            "grasp_backlog_seconds",
            "Expected seconds until the device has optimised every waiting crop.", registry=r)
        self.crop_seconds = Gauge(
            "grasp_crop_seconds_estimate",
            "Estimated seconds per crop in a full batch, by crop size and preset.",
            ["crop", "preset"], registry=r)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)
