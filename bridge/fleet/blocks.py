"""Runs of samples as columns, posted through the bridge's one :class:`~bridge.poster.Poster`.

A fleet posts millions of samples; one Python object per sample (a :class:`Sample`, its
``to_wire`` dict, the client's column lists) costs ~15 µs each on the bridge's side, some 30
times what the twin spends on it. A :class:`SampleBlock` is one :class:`Sample` that stands
for a run of samples held as numpy columns: the poster batches, retries and carries the state
of blocks as of any sample, and :class:`FleetClient` (the poster's client) sends the blocks of
a batch as the columns of their samples, in the client's batch format.

A block is itself a valid sample — its duration, its mean power, distance and ambient — so a
plain client that does not know blocks would send that coarse summary instead (the same
energy and distance), never garbage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bridge.samples import Sample
from clients.python import StepResponse, TwinClient, TwinClientError, TwinValidationError

FLOAT_COLUMNS = ("dt_s", "power_kw", "wheel_speed_m_s", "ambient_c")
FLAG_COLUMNS = ("charging", "precondition")


class SampleBlock(Sample):
    """``len(dt_s)`` samples with ``power_kw``, ``wheel_speed_m_s``, ``ambient_c`` and the
    ``charging`` / ``precondition`` flags, as arrays. As a :class:`Sample` it is their sum:
    the whole duration at the mean power, mean speed and mean ambient."""

    __slots__ = ("columns",)

    def __init__(
        self,
        dt_s: np.ndarray,
        power_kw: np.ndarray,
        wheel_speed_m_s: np.ndarray,
        ambient_c: np.ndarray,
        charging: np.ndarray | None = None,
        precondition: np.ndarray | None = None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        n = len(dt_s)
        if n == 0:
            raise ValueError("a block needs at least one sample")
        columns: dict[str, np.ndarray] = {
            "dt_s": np.asarray(dt_s, dtype=float),
            "power_kw": np.asarray(power_kw, dtype=float),
            "wheel_speed_m_s": np.asarray(wheel_speed_m_s, dtype=float),
            "ambient_c": np.asarray(ambient_c, dtype=float),
        }
        for name, flags in (("charging", charging), ("precondition", precondition)):
            if flags is not None and np.any(flags):
                columns[name] = np.asarray(flags, dtype=bool)
        if any(len(column) != n for column in columns.values()):
            raise ValueError("block columns differ in length")
        dt = columns["dt_s"]
        total_s = float(np.sum(dt))
        Sample.__init__(
            self,
            dt_s=total_s,
            power_kw=float(np.dot(columns["power_kw"], dt)) / total_s,
            wheel_speed_m_s=float(np.dot(np.abs(columns["wheel_speed_m_s"]), dt)) / total_s,
            ambient_c=float(np.dot(columns["ambient_c"], dt)) / total_s,
            charging=True if "charging" in columns else None,
            precondition=True if "precondition" in columns else None,
            extras=dict(extras or {}),
        )
        self.columns = columns

    @property
    def n(self) -> int:
        return len(self.columns["dt_s"])

    @property
    def energy_kwh(self) -> float:
        """Terminal energy asked for (discharge > 0), before the pack's limits."""
        return float(np.dot(self.columns["power_kw"], self.columns["dt_s"])) / 3600.0

    def to_wire(self) -> dict[str, Any]:
        """The summary sample, carrying the block for :class:`FleetClient`."""
        return BlockRow(Sample.to_wire(self), self)


class BlockRow(dict[str, Any]):
    """A block's summary sample (what a plain client sends) and the block itself."""

    __slots__ = ("block",)

    def __init__(self, row: Mapping[str, Any], block: SampleBlock) -> None:
        super().__init__(row)
        self.block = block


def block_columns(blocks: Sequence[SampleBlock], packed: bool) -> dict[str, Any]:
    """The samples of ``blocks`` in order as one columnar ``samples`` object: numeric columns
    as little-endian float64 bytes when ``packed`` (the client's msgpack form), else lists."""
    out: dict[str, Any] = {}
    for name in FLOAT_COLUMNS:
        joined = np.concatenate([b.columns[name] for b in blocks])
        out[name] = joined.astype("<f8").tobytes() if packed else joined.tolist()
    for name in FLAG_COLUMNS:
        if any(name in b.columns for b in blocks):
            flags = [b.columns.get(name, np.zeros(b.n, dtype=bool)) for b in blocks]
            out[name] = np.concatenate(flags).tolist()
    return out


def block_rows(blocks: Sequence[SampleBlock]) -> list[dict[str, Any]]:
    """The samples of ``blocks`` as one object per sample (the ``rows`` batch format)."""
    columns = block_columns(blocks, packed=False)
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _blocks_of(samples: Any) -> list[SampleBlock] | None:
    if isinstance(samples, Mapping) or not isinstance(samples, Sequence) or not samples:
        return None
    if not all(isinstance(row, BlockRow) for row in samples):
        return None
    return [row.block for row in samples]


class FleetClient(TwinClient):
    """A :class:`TwinClient` that sends :class:`SampleBlock` rows as their samples.

    :meth:`around` shares another client's connection pool and settings instead of opening
    its own."""

    _borrowed = False

    @classmethod
    def around(cls, client: TwinClient) -> FleetClient:
        if isinstance(client, FleetClient):
            return client
        wrapped = cls.__new__(cls)
        wrapped.__dict__.update(client.__dict__)
        wrapped._borrowed = True
        return wrapped

    def close(self) -> None:
        if not self._borrowed:
            super().close()

    def samples_wire(self, samples: Any) -> Any:
        blocks = _blocks_of(samples)
        if blocks is None:
            return super().samples_wire(samples)
        if self.batch_format == "rows":
            return block_rows(blocks)
        return block_columns(blocks, packed=self.batch_format == "msgpack")

    def step(self, samples: Any, **kwargs: Any) -> StepResponse:
        try:
            return super().step(samples, **kwargs)
        except TwinValidationError as exc:
            if exc.status_code == 413 or _blocks_of(samples) is None:
                raise  # too large: the poster halves its batches of blocks
            # The service names a sample of the joined columns, not one of the poster's
            # blocks: stop the vehicle with the service's message rather than drop a block.
            body = {"detail": f"a fleet block was rejected: {exc.detail or exc.body}"}
            raise TwinClientError(exc.status_code, body, exc.method, exc.url) from exc
