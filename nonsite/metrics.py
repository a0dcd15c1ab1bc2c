"""The camera service's Prometheus endpoint: each camera's counters and state, read at scrape time.

The fleet already keeps every figure in its ``FleetStatus``; a custom collector turns the status
of the moment into series when Prometheus asks, so nothing is counted twice and a camera that is
removed from the sites folder disappears from the next scrape. The endpoint has a registry of
its own: only the fleet's series and the process's own (memory, CPU, open files), not whatever
a library registered in the global one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from nonsite.ingest import CameraHealth, CameraState, FleetStatus

# Counters of every camera: (series name without _total, the CameraHealth field, help)
_CAMERA_COUNTERS = (
    ("nonsite_camera_frames_read", "frames_read", "Frames taken from the camera at its sample rate."),
    ("nonsite_camera_frames_detected", "frames_detected", "Frames the model looked at."),
    ("nonsite_camera_reconnects", "reconnects", "Times the camera's connection or pipeline was started again."),
    ("nonsite_camera_decode_errors", "decode_errors", "Packets that did not decode, and pictures the decoder had to fill in or decoded from one it filled in."),
    ("nonsite_camera_dropped_frames", "dropped_frames", "Sampled frames dropped because a newer one came or the model fell behind."),
    ("nonsite_camera_packs_raised", "packs_raised", "Violations raised as evidence packs."),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class FleetCollector:
    """Series of the fleet's status at scrape time; ``status`` is the fleet's own ``status`` method."""

    def __init__(self, status: Callable[[], FleetStatus], clock: Callable[[], datetime] = _now):
        self.status = status
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        yield from self._cameras(status.cameras, self.clock())
        if status.detector is not None:
            detector = status.detector
            yield CounterMetricFamily("nonsite_detector_batches", "Calls of the shared model.", value=detector.batches)
            yield GaugeMetricFamily("nonsite_detector_mean_batch_size", "Frames per call of the shared model.", value=detector.mean_batch)
            yield CounterMetricFamily("nonsite_detector_dropped_frames", "Frames the shared model's queue dropped.", value=detector.dropped)
            yield CounterMetricFamily("nonsite_detector_model_seconds", "Seconds spent in the shared model.", value=detector.model_s)
        if status.shadows:
            shadow = CounterMetricFamily("nonsite_shadow_frames", "Frames a model version in shadow was offered, by what became of "
                                         "them (agreed, recorded for officers, repeated, over the hourly cap, not kept, failed).",
                                         labels=["model", "version", "outcome"])
            for running in status.shadows:
                for outcome, count in running.frames.items():
                    shadow.add_metric([running.model, str(running.version), outcome], count)
            yield shadow
        if status.cpu_s:
            cpu = CounterMetricFamily("nonsite_fleet_cpu_seconds", "The service's CPU seconds by part: the cameras' readers, their "
                                      "pipelines, the shared model, models in shadow, evidence, other.", labels=["part"])
            for part, seconds in status.cpu_s.items():
                cpu.add_metric([part], seconds)
            yield cpu
        if status.nodes:  # on a cluster, each node's own: a sum over nodes would fall when one is lost
            node_cpu = CounterMetricFamily("nonsite_node_cpu_seconds", "Each cluster node's camera service's CPU seconds by part, "
                                           "as nonsite_fleet_cpu_seconds; lost nodes are left out.", labels=["node", "part"])
            for node in status.nodes:
                for part, seconds in node.cpu_s.items() if node.state != "lost" else ():
                    node_cpu.add_metric([node.name, part], seconds)
            yield node_cpu
        yield GaugeMetricFamily("nonsite_fleet_start_time_seconds", "When the camera service started (Unix time).",
                                value=status.started_at.timestamp())

    @staticmethod
    def _cameras(cameras: list[CameraHealth], now: datetime) -> Iterator[Metric]:
        for name, field, text in _CAMERA_COUNTERS:
            family = CounterMetricFamily(name, text, labels=["camera"])
            for camera in cameras:
                family.add_metric([camera.camera], getattr(camera, field))
            yield family
        age = GaugeMetricFamily("nonsite_camera_last_frame_age_seconds", "Seconds since the camera's newest frame "
                                "(absent before the first).", labels=["camera"])
        latency = GaugeMetricFamily("nonsite_camera_model_latency_seconds", "Mean wait for the model's answer over the "
                                    "recent frames, queue included.", labels=["camera"])
        up = GaugeMetricFamily("nonsite_camera_up", "1 while the camera is live, else 0.", labels=["camera"])
        misconfigured = GaugeMetricFamily("nonsite_camera_misconfigured", "1 when the camera's address or config is wrong "
                                          "(retrying will not help).", labels=["camera"])
        state = GaugeMetricFamily("nonsite_camera_state", "1 for the camera's current connection state, 0 for the others.",
                                  labels=["camera", "state"])
        for camera in cameras:
            seconds = camera.last_frame_age_s(now)
            if seconds is not None:
                age.add_metric([camera.camera], seconds)
            if camera.model_latency_ms is not None:
                latency.add_metric([camera.camera], camera.model_latency_ms / 1000)
            up.add_metric([camera.camera], 1 if camera.up else 0)
            misconfigured.add_metric([camera.camera], 1 if camera.misconfigured else 0)
            for each in CameraState:
                state.add_metric([camera.camera, each.value], 1 if camera.state == each else 0)
        yield from (age, latency, up, misconfigured, state)


@dataclass
class MetricsServer:
    """The running endpoint; ``shutdown`` stops it and frees its port."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_metrics(host: str, port: int, status: Callable[[], FleetStatus]) -> MetricsServer:
    """Serve the fleet's series at http://host:port/metrics on a daemon thread (port 0: any free port)."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(status))
    ProcessCollector(registry=registry)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)
