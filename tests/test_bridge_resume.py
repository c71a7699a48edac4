"""Exact resume and rev conflicts of the bridge, against a stand-in service that keeps revs.

The stand-in follows SPEC §6 "Integrity of a vehicle's twin": the state carries its `rev`, a
step on a known vehicle from another rev gets 409 `rev_conflict` (nothing stored),
`options.replace` skips the check. It can lose the answer to a step it stored, or make the
bridge "crash" (abort) right before or after storing, which leaves the state file exactly as a
`kill -9` in that window would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.pack import FakePack
from support.wire import request_body

from bridge.poster import (
    Poster,
    PosterConfig,
    PosterConflict,
    PosterStopped,
    atomic_write_json,
    load_state_file,
)
from bridge.roadload import RoadLoadParams
from bridge.samples import Sample
from bridge.sources.charge import ChargeReport, ChargeSession, charge_samples
from bridge.sources.cycle import ChargeStop, cycle_samples
from bridge.sources.replay import replay_samples
from clients.python import (
    TwinClient,
    TwinClientError,
    TwinConflictError,
    TwinHTTPError,
)

SOURCE = {"kind": "test"}


class RevTwin:
    """A stand-in service that stores one snapshot per vehicle and checks revs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.store: dict[str, dict[str, Any]] = {}
        self.bodies: list[dict[str, Any]] = []
        self.integrated = 0  # samples of every stored step
        self.poster: Poster | None = None
        self.crash_on_post: int | None = None  # the n-th POST (1-based) "kills" the bridge ...
        self.crash_after_commit = True  # ... after storing it (else before)
        self.lose_answer_on_post: int | None = None  # store, then drop the connection
        self.after_commit: Callable[[], None] | None = None
        self.posts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if request.method == "GET":
                snapshot = self.store.get(request.url.path.rsplit("/", 1)[1])
                if snapshot is None:
                    return httpx.Response(404, json={"detail": "unknown vehicle"})
                return httpx.Response(200, json=snapshot)
            self.posts += 1
            body = request_body(request)
            self.bodies.append(body)
            crash = self.posts == self.crash_on_post
            if crash and not self.crash_after_commit:
                return self._crash(request)
            response = self.step(body)
            if response.status_code == 200 and crash:
                return self._crash(request)
            if response.status_code == 200 and self.posts == self.lose_answer_on_post:
                raise httpx.ReadError("connection reset", request=request)
        if response.status_code == 200 and self.after_commit is not None:
            self.after_commit()
        return response

    def _crash(self, request: httpx.Request) -> httpx.Response:
        assert self.poster is not None
        self.poster.abort()
        raise httpx.ReadError("killed", request=request)

    def step(self, body: dict[str, Any]) -> httpx.Response:
        vehicle_id = body["vehicle_id"]
        state = body["state"] or {}
        current = self.store.get(vehicle_id)
        given = int(state.get("rev") or 0)
        replace = bool((body.get("options") or {}).get("replace"))
        if current is not None and not replace and current["rev"] != given:
            item = {
                "loc": ["body", "state", "rev"],
                "msg": f"vehicle {vehicle_id!r} is at rev {current['rev']}",
                "type": "rev_conflict",
                "current_rev": current["rev"],
            }
            return httpx.Response(409, json={"detail": [item]})
        rev = max(current["rev"] if current else 0, 0 if replace else given) + 1
        samples = body["samples"]
        new_state = {
            "rev": rev,
            "samples": int(state.get("samples", 0)) + len(samples),
            "elapsed_s": float(state.get("elapsed_s", 0.0)) + sum(s["dt_s"] for s in samples),
            "soc": float(state.get("soc", 0.85)) - 1e-4 * len(samples),
        }
        snapshot = {
            "vehicle_id": vehicle_id,
            "rev": rev,
            "state": new_state,
            "telemetry": {"rev": rev, "soc": new_state["soc"] * 100},
        }
        self.store[vehicle_id] = snapshot
        self.integrated += len(samples)
        return httpx.Response(200, json=snapshot)

    def external_step(self, vehicle_id: str, n: int) -> None:
        """Another writer advances the vehicle's twin by n samples."""
        with self.lock:
            current = self.store[vehicle_id]
            samples = [{"dt_s": 1.0, "power_kw": 1.0}] * n
            self.step({"vehicle_id": vehicle_id, "state": current["state"], "samples": samples})


def _poster(twin: RevTwin, **config: Any) -> Poster:
    client = TwinClient("http://twin.test", transport=httpx.MockTransport(twin))
    defaults: dict[str, Any] = {
        "progress": False,
        "retry_first_s": 0.01,
        "retry_max_s": 0.02,
        "max_batch_age_s": 0.05,
        "max_batch_samples": 10,
        "block_when_full": True,
        "vehicle_id": "ev",
        "source": SOURCE,
    }
    poster = Poster(client, PosterConfig(**{**defaults, **config}))
    twin.poster = poster
    return poster


def _samples(n: int, start: int = 0) -> list[Sample]:
    return [
        Sample(dt_s=1.0, power_kw=float(i % 5), position={"index": i + 1}) for i in range(start, n)
    ]


def _resume_position(poster: Poster) -> int:
    return int(poster.resume_position["index"]) if poster.resume_position else 0


# -- the pending window (a crash between "service stored the batch" and "file written") ------


@pytest.mark.parametrize("landed", [True, False], ids=["batch-landed", "batch-lost"])
def test_a_crash_with_a_batch_in_flight_resumes_exactly(tmp_path: Path, landed: bool) -> None:
    twin = RevTwin()
    state_file = tmp_path / "ev.state.json"
    twin.crash_on_post, twin.crash_after_commit = 3, landed
    crashed = _poster(twin, state_file=state_file).start()
    with pytest.raises(PosterStopped):
        crashed.submit_all(_samples(50))
        crashed.flush(timeout_s=5.0)
    crashed.close(timeout_s=1.0)
    record = load_state_file(state_file)
    assert record is not None
    assert record["format"] == "ev-twin-bridge-state/2"
    assert (record["rev"], record["position"], record["state"]["samples"]) == (2, {"index": 20}, 20)
    assert record["pending"] == {"base_rev": 2, "position": {"index": 30}, "samples": 10}
    assert twin.store["ev"]["rev"] == (3 if landed else 2)

    twin.crash_on_post = None
    resumed = _poster(twin, state_file=state_file)
    assert _resume_position(resumed) == (30 if landed else 20)
    assert resumed.state == twin.store["ev"]["state"]
    assert load_state_file(state_file)["pending"] is None  # settled at once
    with resumed:
        resumed.submit_all(_samples(50, start=_resume_position(resumed)))
    final = load_state_file(state_file)
    assert final["state"]["samples"] == 50 and final["state"]["elapsed_s"] == 50.0
    assert twin.integrated == 50  # nothing integrated twice, nothing skipped
    assert final["position"] == {"index": 50} and final["pending"] is None


def test_a_service_that_forgot_the_vehicle_resumes_from_the_file(tmp_path: Path) -> None:
    twin = RevTwin()
    state_file = tmp_path / "ev.state.json"
    twin.crash_on_post = 3
    crashed = _poster(twin, state_file=state_file).start()
    with pytest.raises(PosterStopped):
        crashed.submit_all(_samples(50))
        crashed.flush(timeout_s=5.0)
    crashed.close(timeout_s=1.0)
    twin.store.clear()  # the memory store restarted
    twin.crash_on_post = None
    with _poster(twin, state_file=state_file) as resumed:
        assert _resume_position(resumed) == 20
        resumed.submit_all(_samples(50, start=20))
    final = load_state_file(state_file)
    assert final["state"]["samples"] == 50
    assert final["rev"] == 5  # 2 in the file, then three batches: revs keep counting


def test_the_first_batch_of_a_new_twin_in_flight(tmp_path: Path) -> None:
    twin = RevTwin()
    state_file = tmp_path / "ev.state.json"
    twin.crash_on_post = 1
    crashed = _poster(twin, state_file=state_file, initial_state={"soc": 0.5}).start()
    with pytest.raises(PosterStopped):
        crashed.submit_all(_samples(10))
        crashed.flush(timeout_s=5.0)
    crashed.close(timeout_s=1.0)
    record = load_state_file(state_file)
    assert record["state"] == {"soc": 0.5} and record["pending"]["base_rev"] == 0
    twin.crash_on_post = None
    with _poster(twin, state_file=state_file, initial_state={"soc": 0.5}) as resumed:
        assert _resume_position(resumed) == 10  # it landed at rev 1
        resumed.submit_all(_samples(15, start=10))
    assert twin.integrated == 15 and twin.store["ev"]["state"]["samples"] == 15


def test_a_lost_answer_is_recognised_when_the_retry_gets_409() -> None:
    twin = RevTwin()
    twin.lose_answer_on_post = 2
    with _poster(twin) as poster:
        poster.submit_all(_samples(40))
    assert poster.stats.failed_attempts == 1 and poster.stats.conflicts == 1
    assert twin.integrated == 40 and poster.state["samples"] == 40
    assert poster.rev == twin.store["ev"]["rev"] == 4


def test_a_finished_run_starts_the_source_afresh_and_keeps_the_state(tmp_path: Path) -> None:
    twin = RevTwin()
    state_file = tmp_path / "ev.state.json"
    with _poster(twin, state_file=state_file) as poster:
        poster.submit_all(_samples(25))
    poster.mark_finished()
    assert load_state_file(state_file)["finished"] is True
    again = _poster(twin, state_file=state_file)
    assert again.resume_position is None and again.state["samples"] == 25
    again.close()
    other = _poster(twin, state_file=state_file, source={"kind": "other"})
    assert other.resume_position is None
    other.close()


def test_a_format_1_state_file_is_still_read(tmp_path: Path) -> None:
    state_file = tmp_path / "old.state.json"
    old = {"format": "ev-twin-bridge-state/1", "vehicle_id": "ev", "rev": 7,
           "state": {"soc": 0.6, "samples": 3}, "telemetry": None}  # fmt: skip
    atomic_write_json(state_file, old)
    twin = RevTwin()
    poster = _poster(twin, state_file=state_file)
    assert poster.state == old["state"] and poster.rev == 7 and poster.resume_position is None
    poster.close()


# -- 409 rev_conflict -----------------------------------------------------------------------


def test_409_rev_conflict_maps_to_twin_conflict_error() -> None:
    item = {"loc": ["body", "state", "rev"], "msg": "m", "type": "rev_conflict", "current_rev": 9}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/step":
            return httpx.Response(409, json={"detail": [item]})
        return httpx.Response(409, json={"detail": "some other conflict"})

    client = TwinClient("http://twin.test", transport=httpx.MockTransport(handler))
    with pytest.raises(TwinConflictError) as info:
        client.step([{"dt_s": 1.0, "power_kw": 1.0}], vehicle_id="ev")
    assert info.value.current_rev == 9 and info.value.status_code == 409
    assert isinstance(info.value, TwinHTTPError) and not info.value.retryable
    with pytest.raises(TwinClientError) as other:
        client.vehicles()
    assert not isinstance(other.value, TwinConflictError)


def _seeded(twin: RevTwin, n: int = 30) -> None:
    """Another bridge already drove vehicle "ev" (n samples, rev 1)."""
    twin.step({"vehicle_id": "ev", "state": None, "samples": [{"dt_s": 1.0, "power_kw": 1.0}] * n})


def test_409_stops_the_poster_with_what_to_do(tmp_path: Path) -> None:
    twin = RevTwin()
    _seeded(twin)
    poster = _poster(twin, state_file=tmp_path / "new.state.json").start()
    with pytest.raises(PosterConflict) as info:
        poster.submit_all(_samples(30))
        poster.flush(timeout_s=5.0)
    poster.close(timeout_s=1.0)
    message = str(info.value)
    assert "newer twin of vehicle 'ev' (rev 1)" in message
    assert "--resume-from-service" in message and "--replace" in message
    assert twin.posts == 1  # no retry loop
    assert twin.store["ev"]["rev"] == 1 and twin.integrated == 30  # nothing stored


def test_replace_sends_only_the_first_batch_with_replace(tmp_path: Path) -> None:
    twin = RevTwin()
    _seeded(twin)
    state_file = tmp_path / "ev.state.json"
    with _poster(twin, replace=True, state_file=state_file) as poster:
        poster.submit_all(_samples(30))
    replaces = [(b.get("options") or {}).get("replace") for b in twin.bodies]
    assert replaces == [True, None, None]
    assert twin.store["ev"]["state"]["samples"] == 30  # restarted from this bridge's state
    assert twin.store["ev"]["rev"] == 4  # revs keep counting over the replace


def test_resume_from_service_starts_from_the_stored_state_and_follows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    twin = RevTwin()
    _seeded(twin, n=100)
    poster = _poster(twin, resume_from_service=True, initial_state={"soc": 0.2})
    assert poster.state == twin.store["ev"]["state"]  # not the seed
    fired = []

    def other_writer() -> None:  # once, after this bridge's first batch
        if not fired:
            fired.append(True)
            twin.external_step("ev", 5)

    twin.after_commit = other_writer
    with poster:
        poster.submit_all(_samples(30))
    assert poster.stats.conflicts == 1
    assert "moved on to rev" in caplog.text
    assert twin.store["ev"]["state"]["samples"] == 100 + 5 + 30
    assert twin.integrated == 100 + 5 + 30


def test_conflicting_flags_are_refused() -> None:
    with pytest.raises(ValueError):
        PosterConfig(replace=True, resume_from_service=True)


# -- sources start from a position ----------------------------------------------------------


def _wire(samples: list[Sample]) -> list[tuple[dict[str, Any], Any]]:
    return [(s.to_wire(), s.position) for s in samples]


def test_cycle_positions_resume_exactly_also_inside_a_charging_stop() -> None:
    params = RoadLoadParams(1752.0, 0.23, 2.22, 0.007, 0.33435, 7.94)
    stop = ChargeStop(to=0.5, below=0.45, power_kw=2.0, step_s=10.0, check_s=60.0)

    def run(pack: FakePack, start: dict[str, Any] | None = None) -> Iterator[Sample]:
        return cycle_samples(
            "udds", params, repeat=2, charge=stop, soc_feedback=lambda: pack.soc, start=start
        )

    whole_pack = FakePack(0.455, kwh=1.0)
    whole = whole_pack.consume(run(whole_pack))
    charging = [i for i, s in enumerate(whole) if s.charging]
    assert charging and len(whole) == 2 * 1369 + len(charging)
    for cut in (1, 700, 1369, charging[0] + 1, charging[len(charging) // 2], charging[-1] + 1):
        pack = FakePack(0.455, kwh=1.0)
        head = pack.consume(run(pack), limit=cut)
        tail = pack.consume(run(pack, start=json.loads(json.dumps(head[-1].position))))
        assert _wire(head + tail) == _wire(whole), cut
    assert whole[-1].position == {"pass": 1, "index": 1369}
    assert list(run(FakePack(0.9), start=whole[-1].position)) == []


def test_replay_and_charge_session_resume_exactly(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"dt_s": 0.5, "power_kw": i}) + "\n" for i in range(40)))
    whole = list(replay_samples([log]))
    assert whole[-1].position == {"index": 40}
    assert _wire(list(replay_samples([log], start=13))) == _wire(whole[13:])

    session = ChargeSession(charger_kw=100.0, from_soc=0.1, to_soc=0.3, precondition_min=2.0)

    def run(pack: FakePack, start: dict[str, Any] | None = None) -> Iterator[Sample]:
        return charge_samples(session, pack.telemetry, ChargeReport(), start=start)

    whole_pack = FakePack(0.1, kwh=50.0)
    full = whole_pack.consume(run(whole_pack))
    assert full[0].position == {"phase": "wake"} and full[-1].position["phase"] == "charge"
    for cut in (1, 5, 13, 20, len(full) - 1):
        pack = FakePack(0.1, kwh=50.0)
        head = pack.consume(run(pack), limit=cut)
        tail = pack.consume(run(pack, start=head[-1].position))
        assert _wire(head + tail) == _wire(full), cut


def test_positions_never_reach_the_service() -> None:
    twin = RevTwin()
    with _poster(twin) as poster:
        poster.submit_all(_samples(3))
    assert all("position" not in s for b in twin.bodies for s in b["samples"])
