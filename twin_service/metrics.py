"""A tiny Prometheus registry (counters, gauges, histograms) and the service's instruments.

Written here rather than depending on prometheus_client: the service needs a handful of
instruments, one registry per app (tests run several apps in one process), and the text
exposition format 0.0.4, which is a few lines.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import TypeVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LabelValues = tuple[str, ...]


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {self.labelnames}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> Iterable[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing count."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[LabelValues, float] = {} if labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> Iterable[str]:
        for key, value in sorted(self._values.items()):
            yield f"{self.name}{_labels(self.labelnames, key)} {_format_value(value)}"


class Gauge(Counter):
    """A value that goes up and down."""

    kind = "gauge"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)

    def set(self, value: float, **labels: str) -> None:
        self._values[self._key(labels)] = float(value)


class Histogram(_Metric):
    """Cumulative buckets, sum and count (no labels: the service does not need them)."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text)
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * (len(self.buckets) + 1)  # last one is +Inf
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self.buckets, value)] += 1
        self._sum += value

    @property
    def count(self) -> int:
        return sum(self._counts)

    def samples(self) -> Iterable[str]:
        cumulative = 0
        for bound, count in zip((*self.buckets, math.inf), self._counts, strict=True):
            cumulative += count
            le = f'le="{_format_value(bound)}"'
            yield f"{self.name}_bucket{{{le}}} {cumulative}"
        yield f"{self.name}_sum {_format_value(self._sum)}"
        yield f"{self.name}_count {cumulative}"


M = TypeVar("M", bound=_Metric)


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def register(self, metric: _Metric) -> None:
        if any(m.name == metric.name for m in self._metrics):
            raise ValueError(f"duplicate metric {metric.name}")
        self._metrics.append(metric)

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics:
            lines.extend(metric.header())
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"


# Step latency buckets (seconds): a one-sample step takes ~1 ms, a 200k-sample batch seconds.
STEP_SECONDS_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)


class Metrics:
    """The instruments of one service app. Owned by the app (app.state.metrics)."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.steps = self._add(Counter("twin_steps_total", "Accepted POST /step requests."))
        self.steps_rejected = self._add(
            Counter(
                "twin_steps_rejected_total", "POST /step requests rejected with a 4xx.", ["status"]
            )
        )
        self.samples = self._add(
            Counter("twin_samples_total", "Samples integrated by accepted steps.")
        )
        self.step_seconds = self._add(
            Histogram(
                "twin_step_duration_seconds",
                "POST /step latency, body read to response.",
                STEP_SECONDS_BUCKETS,
            )
        )
        self.ws_clients = self._add(
            Gauge("twin_websocket_clients", "Connected WebSocket clients.", ["feed"])
        )
        for feed in ("vehicle", "fleet"):
            self.ws_clients.set(0, feed=feed)
        self.ws_dropped = self._add(
            Counter(
                "twin_websocket_dropped_messages_total",
                "Messages dropped because a client's queue was full (newest wins).",
            )
        )
        self.ws_slow_closed = self._add(
            Counter(
                "twin_websocket_slow_closed_total", "Clients closed with 1013 for staying behind."
            )
        )
        self.messages = self._add(
            Counter(
                "twin_hub_messages_total", "State messages received from the hub and fanned out."
            )
        )
        self.publish_failures = self._add(
            Counter(
                "twin_publish_failures_total",
                "Accepted steps that could not be stored or published (hub unreachable).",
            )
        )
        self.hub_up = self._add(
            Gauge("twin_hub_up", "1 while the hub is reachable and subscribed.")
        )
        self.store_up = self._add(
            Gauge("twin_store_up", "1 while the store (snapshots and history) is reachable.")
        )
        self.store_transactions = self._add(
            Counter(
                "twin_store_transactions_total",
                "SQL store transactions (each commits a group of concurrent steps).",
            )
        )
        self.store_committed = self._add(
            Counter("twin_store_committed_steps_total", "Steps the SQL store committed.")
        )
        self.hub_reconnects = self._add(
            Counter(
                "twin_hub_reconnects_total",
                "Times the hub listener (re)subscribed after a failure.",
            )
        )
        self.auth_failures = self._add(
            Counter("twin_auth_failures_total", "Requests and WebSockets that sent a wrong key.")
        )
        self.auth_throttled = self._add(
            Counter(
                "twin_auth_throttled_total",
                "Requests (429) and WebSockets (1013) refused while their address is locked out.",
            )
        )
        self.store_vehicles = self._add(
            Gauge("twin_store_vehicles", "Vehicles the memory store holds.")
        )
        self.store_evicted = self._add(
            Counter(
                "twin_store_evicted_vehicles_total",
                "Vehicles dropped from the memory store at max_vehicles (least recently updated).",
            )
        )
        self.connections_refused = self._add(
            Counter(
                "twin_connections_refused_total",
                "HTTP requests (503) and WebSockets (1013) refused at the connection caps.",
                ["kind"],
            )
        )

    def _add(self, metric: M) -> M:
        self.registry.register(metric)
        return metric

    def render(self) -> str:
        return self.registry.render()
