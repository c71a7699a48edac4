"""The poster against a scripted HTTP transport: batching, retry, buffer, rejection, files."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.wire import request_body

from bridge.poster import (
    Poster,
    PosterConfig,
    PosterStopped,
    atomic_write_json,
    load_state_file,
    offending_sample_index,
)
from bridge.samples import Sample
from clients.python import TwinClient


class ScriptedTwin:
    """A stand-in service: counts samples into the state it returns, fails on demand."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []
        self.down = False
        self.fail_next: list[int | type[Exception]] = []  # statuses or transport errors
        self.reject_dt: float | None = None  # 422 for the first sample with this dt_s

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if self.down:
                raise httpx.ConnectError("connection refused", request=request)
            if self.fail_next:
                failure = self.fail_next.pop(0)
                if isinstance(failure, int):
                    return httpx.Response(failure, json={"detail": "scripted"})
                raise failure("scripted", request=request)
            body = request_body(request)
            for index, sample in enumerate(body["samples"]):
                if self.reject_dt is not None and sample["dt_s"] == self.reject_dt:
                    detail = [{"loc": ["body", "samples", index, "dt_s"], "msg": "bad"}]
                    return httpx.Response(422, json={"detail": detail})
            self.bodies.append(body)
            state = body["state"] or {"soc": 0.85, "samples": 0, "elapsed_s": 0.0}
            n = len(body["samples"])
            new_state = {
                "soc": state["soc"] - 0.001 * n,
                "samples": state.get("samples", 0) + n,
                "elapsed_s": state.get("elapsed_s", 0.0) + sum(s["dt_s"] for s in body["samples"]),
            }
            telemetry = {"soc": new_state["soc"] * 100, "soh": 100.0, "total_distance_km": 0.0}
            return httpx.Response(
                200,
                json={
                    "vehicle_id": body["vehicle_id"],
                    "rev": len(self.bodies),
                    "state": new_state,
                    "telemetry": telemetry,
                },
            )


def _poster(twin: ScriptedTwin, **config: Any) -> Poster:
    client = TwinClient("http://twin.test", transport=httpx.MockTransport(twin))
    defaults: dict[str, Any] = {
        "progress": False,
        "retry_first_s": 0.01,
        "retry_max_s": 0.05,
        "max_batch_age_s": 0.05,
    }
    return Poster(client, PosterConfig(**{**defaults, **config}))


def _samples(n: int, dt_s: float = 0.1) -> list[Sample]:
    return [Sample(dt_s=dt_s, power_kw=float(i % 7)) for i in range(n)]


def test_batches_are_bounded_by_size_and_state_is_carried() -> None:
    twin = ScriptedTwin()
    with _poster(twin, max_batch_samples=500, block_when_full=True) as poster:
        poster.submit_all(_samples(1050))
    sizes = [len(b["samples"]) for b in twin.bodies]
    assert sum(sizes) == 1050 and max(sizes) <= 500
    assert twin.bodies[0]["state"] is None
    for i in range(1, len(twin.bodies)):  # each call continues the state of the one before
        assert twin.bodies[i]["state"]["samples"] == sum(len(b["samples"]) for b in twin.bodies[:i])
    assert poster.state["samples"] == 1050
    assert poster.stats.samples_sent == 1050


def test_batches_are_bounded_by_age() -> None:
    twin = ScriptedTwin()
    poster = _poster(twin, max_batch_samples=1000, max_batch_age_s=0.1).start()
    poster.submit(Sample(dt_s=1.0, power_kw=1.0))
    deadline = time.monotonic() + 2.0
    while not twin.bodies and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(twin.bodies) == 1  # sent without flush and without filling the batch
    poster.close()


def test_retries_through_connection_errors_and_5xx_without_losing_samples() -> None:
    twin = ScriptedTwin()
    twin.fail_next = [httpx.ConnectError, 503, httpx.ReadTimeout, 500]
    with _poster(twin, max_batch_samples=10) as poster:
        poster.submit_all(_samples(25))
    assert poster.stats.failed_attempts == 4
    assert poster.state["samples"] == 25
    assert sum(len(b["samples"]) for b in twin.bodies) == 25


def test_outage_keeps_every_sample_then_sends_them_in_order() -> None:
    twin = ScriptedTwin()
    twin.down = True
    poster = _poster(twin, max_batch_samples=50, max_buffer_samples=1000).start()
    samples = [Sample(dt_s=0.1 * (i + 1), power_kw=1.0) for i in range(300)]
    poster.submit_all(samples)
    time.sleep(0.2)
    assert poster.buffered == 300 and not twin.bodies
    twin.down = False
    assert poster.flush(timeout_s=5.0)
    poster.close()
    sent = [s["dt_s"] for b in twin.bodies for s in b["samples"]]
    assert sent == [s.dt_s for s in samples]
    assert poster.stats.samples_dropped == 0


def test_overflow_drops_new_samples_and_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    twin = ScriptedTwin()
    twin.down = True
    poster = _poster(twin, max_batch_samples=10, max_buffer_samples=100).start()
    accepted = [poster.submit(s) for s in _samples(150)]
    assert accepted.count(False) == 50
    assert poster.stats.samples_dropped == 50
    assert "dropped" in caplog.text
    twin.down = False
    poster.close(timeout_s=5.0)
    assert poster.state["samples"] == 100


def test_back_pressure_instead_of_drops_when_blocking() -> None:
    twin = ScriptedTwin()
    twin.down = True
    poster = _poster(twin, max_batch_samples=10, max_buffer_samples=20, block_when_full=True)
    poster.start()
    done = threading.Event()

    def produce() -> None:
        poster.submit_all(_samples(100))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    time.sleep(0.2)
    assert not done.is_set() and poster.buffered == 20
    twin.down = False
    assert done.wait(5.0)
    poster.close(timeout_s=5.0)
    assert poster.state["samples"] == 100 and poster.stats.samples_dropped == 0


def test_the_sample_the_service_names_is_dropped_the_rest_sent() -> None:
    twin = ScriptedTwin()
    twin.reject_dt = 0.7
    samples = _samples(20)
    samples[13] = Sample(dt_s=0.7, power_kw=1.0)
    with _poster(twin, max_batch_samples=50) as poster:
        poster.submit_all(samples)
    assert poster.stats.samples_rejected == 1
    assert poster.state["samples"] == 19


def test_unidentifiable_rejection_and_auth_failure_stop_the_poster() -> None:
    for status in (401, 400):
        twin = ScriptedTwin()
        twin.fail_next = [status]
        poster = _poster(twin).start()
        poster.submit(Sample(dt_s=1.0, power_kw=1.0))
        with pytest.raises(PosterStopped):
            poster.flush(timeout_s=5.0)
        with pytest.raises(PosterStopped):
            poster.submit(Sample(dt_s=1.0, power_kw=1.0))
        poster.close(timeout_s=1.0)


def test_too_large_requests_halve_the_batch() -> None:
    twin = ScriptedTwin()
    twin.fail_next = [413]
    with _poster(twin, max_batch_samples=64, block_when_full=True) as poster:
        poster.submit_all(_samples(64))
    assert [len(b["samples"]) for b in twin.bodies] == [32, 32]


def test_state_and_live_files_are_written_and_resumed(tmp_path: Path) -> None:
    twin = ScriptedTwin()
    state_file, live_file = tmp_path / "run.state.json", tmp_path / "live_data.json"
    with _poster(twin, state_file=state_file, live_file=live_file, vehicle_id="ev-7") as poster:
        poster.submit_all(_samples(30))
    record = load_state_file(state_file)
    assert record["vehicle_id"] == "ev-7" and record["state"]["samples"] == 30
    assert json.loads(live_file.read_text())["soc"] == pytest.approx(record["state"]["soc"] * 100)
    with _poster(twin, state_file=state_file, vehicle_id="ev-7") as resumed:
        assert resumed.state == record["state"]
        resumed.submit_all(_samples(5))
    assert twin.bodies[-1]["state"]["samples"] == 30
    assert load_state_file(state_file)["state"]["samples"] == 35
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_new_pack_seed_and_options_are_sent() -> None:
    twin = ScriptedTwin()
    config = {"initial_state": {"soc": 0.5}, "options": {"demo_mode": True}, "vehicle": "sv1ev3"}
    with _poster(twin, **config) as poster:
        poster.submit(Sample(dt_s=1.0, power_kw=1.0))
    body = twin.bodies[0]
    assert body["state"] == {"soc": 0.5}
    assert body["options"] == {"demo_mode": True} and body["vehicle"] == "sv1ev3"


def test_sample_log_carries_extras_and_twin_soc(tmp_path: Path) -> None:
    twin = ScriptedTwin()
    log = tmp_path / "samples.jsonl"
    with _poster(twin, sample_log=log) as poster:
        poster.submit(Sample(dt_s=1.0, power_kw=1.0, extras={"beamng_fuel": 0.7}))
    (row,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert row["beamng_fuel"] == 0.7 and row["twin_soc_pct"] == pytest.approx(84.9)
    assert "beamng_fuel" not in twin.bodies[0]["samples"][0]


def test_close_gives_up_after_its_timeout_when_the_service_stays_down() -> None:
    twin = ScriptedTwin()
    twin.down = True
    poster = _poster(twin).start()
    poster.submit_all(_samples(5))
    started = time.monotonic()
    assert poster.close(timeout_s=0.3) is False
    assert time.monotonic() - started < 3.0


def test_offending_sample_index_shapes() -> None:
    fastapi = {"detail": [{"loc": ["body", "samples", 7, "dt_s"], "msg": "x"}]}
    assert offending_sample_index(fastapi) == 7
    assert offending_sample_index({"detail": {"field": "dt_s", "index": 3}}) == 3
    assert offending_sample_index({"detail": "samples[12].dt_s must be > 0"}) == 12
    assert offending_sample_index({"detail": [{"loc": ["body", "vehicle"]}]}) is None


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"b": 2})
    assert json.loads(path.read_text()) == {"b": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]
