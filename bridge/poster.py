"""The one path into ``POST /step`` for every source.

Sources hand samples to :meth:`Poster.submit`; a sender thread posts them in batches bounded
by size and by age, retries with exponential backoff and jitter while the service is down,
keeps every sample in a bounded buffer meanwhile (back-pressure for sources that can wait,
counted and logged drops for real-time sources when the buffer overflows), carries the
returned ``state`` into the next call and can persist it (``--state-file``) and the latest
telemetry (``--live-file``) after every accepted batch.

The state file also holds the source position of the last accepted sample, so a restarted
source continues right behind it, and, while a batch is in flight, a ``pending`` record (the
rev the state is at and the batch's end position): after a crash in that window the service
tells whether the batch landed (its rev is then exactly one above). A 409 ``rev_conflict``
(another writer holds a newer twin of the vehicle, SPEC §6) stops the poster unless it was
told to continue from the service's state (``resume_from_service``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bridge.samples import Sample
from clients.python import (
    StepResponse,
    TwinClient,
    TwinConflictError,
    TwinConnectionError,
    TwinHTTPError,
    TwinNotFound,
    TwinValidationError,
)

logger = logging.getLogger(__name__)

STATE_FILE_FORMAT = "ev-twin-bridge-state/2"
#: Formats :func:`load_state_file` reads (/1 has no source position and no pending batch).
STATE_FILE_FORMATS = ("ev-twin-bridge-state/1", STATE_FILE_FORMAT)
#: Log a drop summary at most this often while the buffer overflows.
DROP_LOG_INTERVAL_S = 10.0
#: While the service cannot be reached, say so at least this often.
UNREACHABLE_LOG_S = 10.0


class PosterStopped(RuntimeError):
    """The poster stopped for good (fatal rejection by the service or an abort)."""


class PosterConflict(PosterStopped):
    """The service holds a newer twin of the vehicle (409 ``rev_conflict``)."""


@dataclass
class PosterConfig:
    """How samples are batched, retried, buffered and persisted."""

    vehicle_id: str = "default"
    vehicle: str | Mapping[str, Any] | None = None
    options: dict[str, Any] | None = None
    max_batch_samples: int = 500
    max_batch_age_s: float = 1.0
    max_buffer_samples: int = 200_000
    #: True: ``submit`` waits while the buffer is full (replays, --fast). False: drop + count.
    block_when_full: bool = False
    retry_first_s: float = 0.5
    retry_max_s: float = 30.0
    #: Log a warning at least this often (wall seconds) while the service is unreachable.
    unreachable_log_s: float = UNREACHABLE_LOG_S
    #: Seed for a new pack (``{"soc": 0.5}``) when there is no state file to resume from.
    initial_state: dict[str, Any] | None = None
    state_file: Path | None = None
    live_file: Path | None = None
    sample_log: Path | None = None
    progress: bool = True
    progress_interval_s: float = 5.0
    #: What produces the samples (JSON, e.g. ``{"kind": "cycle", "cycle": "udds"}``): a saved
    #: position is only resumed by the same source.
    source: Mapping[str, Any] | None = None
    #: Send the first batch with ``options.replace`` (take over the vehicle's twin).
    replace: bool = False
    #: Start from the service's stored state of the vehicle, and continue from it on a 409.
    resume_from_service: bool = False

    def __post_init__(self) -> None:
        if self.max_batch_samples < 1 or self.max_buffer_samples < self.max_batch_samples:
            raise ValueError("need 1 ≤ max_batch_samples ≤ max_buffer_samples")
        if self.max_batch_age_s <= 0 or self.retry_first_s <= 0 or self.unreachable_log_s <= 0:
            raise ValueError("max_batch_age_s, retry_first_s and unreachable_log_s must be > 0")
        if self.replace and self.resume_from_service:
            raise ValueError("replace and resume_from_service exclude each other")


@dataclass
class PosterStats:
    samples_submitted: int = 0
    samples_sent: int = 0
    samples_dropped: int = 0
    samples_rejected: int = 0
    requests: int = 0  # POST /step attempts
    batches: int = 0  # accepted POST /step requests
    failed_attempts: int = 0
    conflicts: int = 0  # 409 rev_conflict answers
    bridge_distance_km: float = 0.0  # Σ wheel speed·dt of the samples the service accepted
    started_at: float = field(default_factory=time.monotonic)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that readers see either the old or the new file, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state_file(path: Path) -> dict[str, Any] | None:
    """The saved record of a previous run, or None when the file does not exist.

    ``state`` is an object, or null while the first batch of a new twin is ``pending``.
    """
    path = Path(path)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a bridge state file")
    fmt = record.get("format", STATE_FILE_FORMATS[0])
    if fmt not in STATE_FILE_FORMATS:
        raise ValueError(f"{path}: unknown state file format {fmt!r}")
    state = record.get("state")
    if not isinstance(state, dict) and not (state is None and record.get("pending")):
        raise ValueError(f"{path}: not a bridge state file (no 'state' object)")
    return record


def conflict_message(vehicle_id: str, exc: TwinConflictError) -> str:
    """What to do when the service holds a newer twin of the vehicle than this bridge."""
    rev = f"rev {exc.current_rev}" if exc.current_rev is not None else "a newer rev"
    return (
        f"the service already holds a newer twin of vehicle {vehicle_id!r} ({rev}); rerun "
        "with --resume-from-service to continue from the stored state or --replace to "
        "restart the twin from this bridge's state"
    )


def offending_sample_index(body: Any) -> int | None:
    """Find the index of the rejected sample in a 4xx body (FastAPI ``loc`` or a message)."""
    if isinstance(body, Mapping):
        loc = body.get("loc")
        if isinstance(loc, list | tuple) and "samples" in loc:
            after = list(loc)[list(loc).index("samples") + 1 :]
            # rows: samples, i, field; columns: samples, field, i (motors: ..., j, name, i)
            for at in (0, -1):
                if after and isinstance(after[at], int) and not isinstance(after[at], bool):
                    return after[at]
        for key in ("index", "sample_index"):
            if isinstance(body.get(key), int):
                return int(body[key])
        for value in body.values():
            found = offending_sample_index(value)
            if found is not None:
                return found
    elif isinstance(body, list | tuple):
        for value in body:
            found = offending_sample_index(value)
            if found is not None:
                return found
    elif isinstance(body, str):
        match = re.search(r"samples(?:\[|\.|/|\s)(\d+)", body)
        if match:
            return int(match.group(1))
    return None


class Poster:
    """Batches samples to ``POST /step`` from a background thread.

    Use as a context manager (or :meth:`start` / :meth:`close`)::

        with Poster(client, config) as poster:
            for sample in source:
                poster.submit(sample)
    """

    def __init__(self, client: TwinClient, config: PosterConfig) -> None:
        self.client = client
        self.config = config
        self.stats = PosterStats()
        self.state: dict[str, Any] | None = None
        #: The service rev ``state`` was stored at (None: a new pack or seed).
        self.rev: int | None = None
        #: Source position after the last accepted sample.
        self.position: dict[str, Any] | None = None
        #: Where the source should start (None: at its beginning).
        self.resume_position: dict[str, Any] | None = None
        self.last_response: StepResponse | None = None
        self._telemetry: Any = None
        self._finished = False
        self._replace_next = config.replace
        self._pending_written: Any = None
        self._buffer: deque[Sample] = deque()
        self._cond = threading.Condition()
        self._oldest_at: float | None = None  # monotonic time the oldest unsent sample arrived
        self._flush_requested = 0
        self._closing = False
        self._abort = threading.Event()
        self._fatal: BaseException | None = None
        self._batch_limit = config.max_batch_samples
        self._thread: threading.Thread | None = None
        self._last_drop_log = 0.0
        self._drops_unlogged = 0
        self._last_unreachable_log: float | None = None
        #: True while the service cannot be reached (the last attempt failed with a
        #: connection error or a retryable status).
        self.unreachable = False
        self._day: Any = None  # the "day" extra of the last accepted sample (demo days)
        self._last_progress = 0.0
        self._last_progress_line = ""
        self._sample_log: IO[str] | None = None
        self._progress_tty = sys.stderr.isatty()
        self._resume()

    # -- lifecycle -------------------------------------------------------------------------

    def _resume(self) -> None:
        """Pick the starting state and source position: state file, service, or seed."""
        config = self.config
        record = load_state_file(config.state_file) if config.state_file is not None else None
        pending = record.get("pending") if record is not None else None
        remote: StepResponse | None = None
        if pending or config.resume_from_service:
            remote = self._fetch_vehicle()
        position: dict[str, Any] | None = None
        adopted = False
        if remote is not None and config.resume_from_service:
            self._adopt(remote)
            adopted = True
            if record is not None and remote.get("rev") == record.get("rev"):
                position = record.get("position")
            elif pending and remote.get("rev") == _base(pending) + 1:
                position = pending.get("position")
            logger.info(
                "continuing vehicle %r from the service's state at rev %s", config.vehicle_id,
                remote.get("rev"),
            )  # fmt: skip
        elif record is not None:
            if record.get("vehicle_id") not in (None, config.vehicle_id):
                logger.warning(
                    "state file %s belongs to vehicle %r, continuing it as %r",
                    config.state_file,
                    record.get("vehicle_id"),
                    config.vehicle_id,
                )
            if pending and remote is not None and remote.get("rev") == _base(pending) + 1:
                self._adopt(remote)
                adopted = True
                position = pending.get("position")
                logger.info("the batch in flight at the last stop landed (rev %s)", self.rev)
            else:
                if pending:
                    logger.info("the batch in flight at the last stop did not land: resending")
                self.state = record["state"]
                self.rev = record.get("rev")
                self._telemetry = record.get("telemetry")
                position = record.get("position")
                if self.state is None and config.initial_state:
                    self.state = dict(config.initial_state)
            if self.state is not None:
                logger.info(
                    "resuming from %s: soc %.4f soh %.6f, %.3f km",
                    "the service's state" if adopted else config.state_file,
                    self.state.get("soc", float("nan")),
                    self.state.get("soh", float("nan")),
                    self.state.get("total_distance_km", float("nan")),
                )
        else:
            self.state = dict(config.initial_state) if config.initial_state else None
        same_source = record is not None and record.get("source") == _plain(config.source)
        finished = record is not None and bool(record.get("finished"))
        if position is not None and same_source and not finished:
            self.resume_position = position
            logger.info("the source continues after position %s", position)
        elif position is not None and not same_source:
            logger.info("the state file's position is from another source: starting afresh")
        # Positions are the source's: a source that starts afresh starts at None.
        self.position = self.resume_position
        if config.state_file is not None and (pending or adopted):
            self._save()  # the in-flight batch is settled (and the state may be the service's)

    def _adopt(self, remote: StepResponse) -> None:
        self.state = dict(remote["state"])
        self.rev = remote.get("rev")
        self._telemetry = remote.get("telemetry")

    def _fetch_vehicle(self) -> StepResponse | None:
        """``GET /vehicles/{id}``, retried while the service is unreachable; None if unknown."""
        delay_s, failures = self.config.retry_first_s, 0
        while True:
            failures += 1
            try:
                return self.client.vehicle(self.config.vehicle_id)
            except TwinNotFound:
                return None
            except (TwinConnectionError, TwinHTTPError) as exc:
                if isinstance(exc, TwinHTTPError) and not exc.retryable:
                    logger.warning("cannot read vehicle %r back: %s", self.config.vehicle_id, exc)
                    return None
                what = f"reading vehicle {self.config.vehicle_id!r} back"
                if self._wait_to_retry(delay_s * (0.5 + random.random()), exc, failures, what):
                    raise PosterStopped("aborted") from exc
            delay_s = min(self.config.retry_max_s, delay_s * 2.0)

    def start(self) -> Poster:
        if self._thread is None:
            if self.config.sample_log is not None:
                self.config.sample_log.parent.mkdir(parents=True, exist_ok=True)
                self._sample_log = open(self.config.sample_log, "a")  # noqa: SIM115
            self._thread = threading.Thread(target=self._run, name="bridge-poster", daemon=True)
            self._thread.start()
        return self

    def __enter__(self) -> Poster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is KeyboardInterrupt:
            return  # the caller decides how long to flush (see bridge.__main__)
        self.close()

    def close(self, timeout_s: float | None = None) -> bool:
        """Send what is buffered (waiting at most ``timeout_s``), then stop the sender.

        Returns True when every sample was accepted. The state file is already current: it
        is written after every accepted batch.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        emptied = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._abort.set()
                with self._cond:
                    self._cond.notify_all()
                self._thread.join(5.0)
            emptied = not self._buffer
        if self._buffer:
            unsent = f"{len(self._buffer):,}"
            logger.error("%s samples were not sent (%s)", unsent, self.unsent_reason)
        self._progress(final=True)
        sender_done = self._thread is None or not self._thread.is_alive()
        if self._sample_log is not None and sender_done:
            self._sample_log.close()
            self._sample_log = None
        return emptied

    def mark_finished(self) -> None:
        """The source ended and every sample was accepted: a next run starts the source afresh
        (from this state)."""
        self._finished = True
        if self.config.state_file is not None and self.state is not None:
            self._save()

    def abort(self) -> None:
        """Stop now without sending the buffer (second Ctrl-C)."""
        self._abort.set()
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    # -- producer side ---------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def submit(self, sample: Sample) -> bool:
        """Queue one sample. Returns False if it had to be dropped (buffer full)."""
        with self._cond:
            self._raise_if_stopped()
            self.stats.samples_submitted += 1
            limit = self.config.max_buffer_samples
            if len(self._buffer) >= limit:
                if self.config.block_when_full:
                    while len(self._buffer) >= limit:
                        self._raise_if_stopped()
                        self._cond.wait(0.5)
                else:
                    self._count_drop()
                    return False
            first = not self._buffer
            if first:
                self._oldest_at = time.monotonic()
            self._buffer.append(sample)
            if first or len(self._buffer) >= self._batch_limit:
                self._cond.notify_all()  # the sender re-times its wait / sends a full batch
        return True

    def submit_all(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            self.submit(sample)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every submitted sample was accepted (True) or the timeout passed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            self._flush_requested += 1
            self._cond.notify_all()
            try:
                while self._buffer:
                    self._raise_if_stopped()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(0.5 if remaining is None else min(0.5, remaining))
                return True
            finally:
                self._flush_requested -= 1

    def current_soc(self) -> float | None:
        """SOC (0..1) after every submitted sample, waiting for the service if needed."""
        self.flush()
        return None if self.state is None else float(self.state.get("soc", 0.0))

    @property
    def unsent_reason(self) -> str:
        """Why samples are still buffered (after :meth:`close`)."""
        if isinstance(self._fatal, PosterConflict):
            return "the service holds a newer twin of the vehicle"
        if self.unreachable:
            return "service unreachable"
        if self._fatal is not None and str(self._fatal) != "aborted":
            return f"poster stopped: {str(self._fatal)[:120]}"
        return "aborted" if self._abort.is_set() else "not sent yet"

    @property
    def fatal(self) -> BaseException | None:
        """Why the sender stopped for good (None while it runs or after a clean close)."""
        return self._fatal

    def _raise_if_stopped(self) -> None:
        if isinstance(self._fatal, PosterConflict):
            raise PosterConflict(str(self._fatal)) from self._fatal
        if self._fatal is not None:
            raise PosterStopped(str(self._fatal)) from self._fatal
        if self._abort.is_set():
            raise PosterStopped("aborted")

    def _count_drop(self) -> None:
        self.stats.samples_dropped += 1
        self._drops_unlogged += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            logger.warning(
                "buffer full (%d samples): dropped %d new samples (total dropped %d)",
                self.config.max_buffer_samples,
                self._drops_unlogged,
                self.stats.samples_dropped,
            )
            self._last_drop_log = now
            self._drops_unlogged = 0

    # -- sender thread ---------------------------------------------------------------------

    def _batch_ready(self) -> bool:
        if not self._buffer:
            return False
        if self._closing or self._flush_requested or len(self._buffer) >= self._batch_limit:
            return True
        assert self._oldest_at is not None
        return time.monotonic() - self._oldest_at >= self.config.max_batch_age_s

    def _run(self) -> None:
        try:
            while not self._abort.is_set():
                with self._cond:
                    while not self._batch_ready():
                        if self._closing and not self._buffer:
                            return
                        if self._abort.is_set():
                            return
                        wait_s = 0.5
                        if self._buffer and self._oldest_at is not None:
                            age_s = time.monotonic() - self._oldest_at
                            wait_s = max(0.001, min(wait_s, self.config.max_batch_age_s - age_s))
                        self._cond.wait(wait_s)
                    batch = list(itertools.islice(self._buffer, self._batch_limit))
                response = self._post_with_retry(batch)
                if response is None:
                    continue  # the batch changed (a rejected sample removed, size halved)
                with self._cond:
                    for _ in batch:
                        self._buffer.popleft()
                    self._oldest_at = time.monotonic() if self._buffer else None
                    self._cond.notify_all()
                self._accepted(batch, response)
        except BaseException as exc:  # noqa: BLE001 - reported to the producer thread
            if not isinstance(exc, PosterStopped):
                logger.exception("poster stopped")
            self._fatal = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _post_with_retry(self, batch: list[Sample]) -> StepResponse | None:
        delay_s = self.config.retry_first_s
        failures = 0
        wire = [s.to_wire() for s in batch]
        base_rev: int | None = None
        while True:
            if self._abort.is_set():
                raise PosterStopped("aborted")
            try:
                if base_rev is None:
                    base_rev = self._base_rev()
                self._write_pending(base_rev, batch)
                options = dict(self.config.options or {})
                if self._replace_next:
                    options["replace"] = True
                self.stats.requests += 1
                response = self.client.step(
                    wire,
                    vehicle_id=self.config.vehicle_id,
                    vehicle=self.config.vehicle,
                    state=self.state,
                    options=options or None,
                )
                if failures:
                    logger.info("service back after %d failed attempts", failures)
                    self._last_unreachable_log = None
                self.unreachable = False
                return response
            except TwinValidationError as exc:
                if self._handle_rejection(exc, batch):
                    return None
                raise PosterStopped(f"service rejected the request: {exc}") from exc
            except TwinConflictError as exc:
                self.stats.conflicts += 1
                remote = self._fetch_vehicle()
                landed_rev = None if base_rev is None else base_rev + 1
                if failures and remote is not None and remote.get("rev") == landed_rev:
                    # An earlier attempt of this batch landed but its answer was lost.
                    logger.info("batch landed on an earlier attempt (rev %s)", remote.get("rev"))
                    return remote
                if remote is None or not self.config.resume_from_service:
                    raise PosterConflict(conflict_message(self.config.vehicle_id, exc)) from exc
                logger.warning(
                    "vehicle %r moved on to rev %s elsewhere: continuing from the service's state",
                    self.config.vehicle_id,
                    remote.get("rev"),
                )
                self._adopt(remote)
                base_rev = None
                continue
            except TwinHTTPError as exc:
                if not exc.retryable:
                    raise PosterStopped(f"service refused the request: {exc}") from exc
                error: TwinConnectionError | TwinHTTPError = exc
            except TwinConnectionError as exc:
                error = exc
            failures += 1
            self.stats.failed_attempts += 1
            self.unreachable = True
            wait_s = delay_s * (0.5 + random.random())  # full jitter around the backoff
            self._wait_to_retry(wait_s, error, failures, "POST /step")
            delay_s = min(self.config.retry_max_s, delay_s * 2.0)

    def _wait_to_retry(self, wait_s: float, error: Exception, attempt: int, what: str) -> bool:
        """Wait ``wait_s`` before the next attempt, saying that the service is unreachable at
        the first failure and then at least every ``unreachable_log_s`` (also while waiting).
        Returns True when aborted."""
        deadline = time.monotonic() + wait_s
        every_s = self.config.unreachable_log_s
        reason = _unreachable_reason(error)
        first, told = attempt == 1, False
        while True:
            now = time.monotonic()
            last = self._last_unreachable_log
            if (first or last is None or now - last >= every_s) and deadline > now:
                self._last_unreachable_log = last = now
                logger.warning(
                    "service %s unreachable (%s); %s samples buffered, retrying in %.1f s "
                    "(%s, attempt %d)",
                    getattr(self.client, "base_url", "?"),
                    reason,
                    f"{len(self._buffer):,}",
                    deadline - now,
                    what,
                    attempt,
                )
            elif not told:
                logger.debug("%s failed (%s); retry %d in %.1f s", what, error, attempt,
                             deadline - now)  # fmt: skip
            first, told = False, True  # the rest of this wait goes by the cadence
            if deadline <= now:
                return self._abort.is_set()
            next_log_s = every_s if last is None else last + every_s - now
            if self._abort.wait(max(0.0, min(deadline - now, next_log_s))):
                return True

    def _base_rev(self) -> int:
        """The vehicle's rev before the next batch lands (it is stored at this + 1)."""
        if self._replace_next and self.config.state_file is not None:
            # A replace is stored on top of whatever the service holds.
            try:
                return int(self.client.vehicle(self.config.vehicle_id).get("rev") or 0)
            except TwinNotFound:
                return 0
            except TwinHTTPError as exc:
                if exc.retryable:
                    raise
                logger.warning("cannot read vehicle %r back: %s", self.config.vehicle_id, exc)
        return self.rev or 0

    def _write_pending(self, base_rev: int, batch: list[Sample]) -> None:
        """Record the batch about to be posted, so a restart can tell whether it landed."""
        if self.config.state_file is None:
            return
        pending = {"base_rev": base_rev, "position": batch[-1].position, "samples": len(batch)}
        if pending != self._pending_written:
            self._save(pending)
            self._pending_written = pending

    def _handle_rejection(self, exc: TwinValidationError, batch: list[Sample]) -> bool:
        """Shrink an oversized batch or drop the one sample the service named."""
        if exc.status_code == 413 and self._batch_limit > 1:
            self._batch_limit = max(1, len(batch) // 2)
            logger.warning("request too large; batches now at most %d samples", self._batch_limit)
            return True
        index = offending_sample_index(exc.body)
        if index is None or not 0 <= index < len(batch):
            return False
        with self._cond:
            del self._buffer[index]
            self._oldest_at = time.monotonic() if self._buffer else None
            self._cond.notify_all()
        self.stats.samples_rejected += 1
        logger.error(
            "service rejected sample %s: %s; dropped it",
            batch[index].to_wire(),
            exc.detail if exc.detail is not None else exc.body,
        )
        return True

    def _accepted(self, batch: list[Sample], response: StepResponse) -> None:
        self.state = dict(response["state"])
        self.rev = response.get("rev")
        self.position = batch[-1].position
        self._telemetry = response.get("telemetry")
        self._replace_next = False
        self.last_response = response
        self.stats.samples_sent += len(batch)
        self.stats.batches += 1
        self._day = batch[-1].extras.get("day", self._day)
        self.stats.bridge_distance_km += sum(s.distance_m for s in batch) / 1000.0
        if self.config.state_file is not None:
            self._save()
            self._pending_written = None
        if self.config.live_file is not None and "telemetry" in response:
            atomic_write_json(self.config.live_file, response["telemetry"])
        if self._sample_log is not None:
            self._log_samples(batch, response)
        self._progress()

    def _save(self, pending: dict[str, Any] | None = None) -> None:
        assert self.config.state_file is not None
        atomic_write_json(self.config.state_file, self._state_record(pending))

    def _state_record(self, pending: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "format": STATE_FILE_FORMAT,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "vehicle_id": self.config.vehicle_id,
            "vehicle": self.config.vehicle,
            "rev": self.rev,
            "state": self.state,
            "telemetry": self._telemetry,
            "source": _plain(self.config.source),
            "position": self.position,
            "finished": self._finished,
            "pending": pending,
        }

    def _log_samples(self, batch: list[Sample], response: StepResponse) -> None:
        assert self._sample_log is not None
        telemetry = response.get("telemetry", {})
        twin = {"twin_rev": response.get("rev"), "twin_soc_pct": telemetry.get("soc")}
        for sample in batch:
            row = {**sample.to_wire(), **sample.extras, **twin}
            self._sample_log.write(json.dumps(row) + "\n")
        self._sample_log.flush()

    # -- progress --------------------------------------------------------------------------

    def progress_line(self) -> str:
        telemetry = (self.last_response or {}).get("telemetry", {})
        km = telemetry.get("total_distance_km", self.stats.bridge_distance_km)
        soc = telemetry.get("soc")
        soh = telemetry.get("soh")
        parts = [] if self._day is None else [f"day {self._day}"]
        parts += [
            f"sent {self.stats.samples_sent}",
            f"{km:.2f} km",
            f"SOC {soc:.2f} %" if soc is not None else "SOC -",
            f"SOH {soh:.4f} %" if soh is not None else "SOH -",
            f"buffered {len(self._buffer)}",
        ]
        if self.stats.samples_dropped:
            parts.append(f"dropped {self.stats.samples_dropped}")
        if self.stats.samples_rejected:
            parts.append(f"rejected {self.stats.samples_rejected}")
        return " | ".join(parts)

    def _progress(self, final: bool = False) -> None:
        if not self.config.progress or (final and not self.stats.samples_sent):
            return
        now = time.monotonic()
        interval = 0.5 if self._progress_tty else self.config.progress_interval_s
        if not final and now - self._last_progress < interval:
            return
        self._last_progress = now
        line = self.progress_line()
        if final and line == self._last_progress_line:
            return
        self._last_progress_line = line
        # The progress line is the bridge's one direct terminal output (not a log record).
        if self._progress_tty:
            sys.stderr.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _unreachable_reason(error: BaseException) -> str:
    """``ConnectError: [Errno 111] Connection refused``, ``HTTP 503``: why a retry is due."""
    if isinstance(error, TwinHTTPError):
        return f"HTTP {error.status_code}"
    cause = error.__cause__
    if cause is not None:
        text = str(cause)
        return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return str(error)


def _base(pending: Mapping[str, Any]) -> int:
    return int(pending.get("base_rev") or 0)


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return None if value is None else json.loads(json.dumps(value))
