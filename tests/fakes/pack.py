"""A pack for sources that read back the SOC (charge stops, charging sessions): its SOC
follows the energy of the samples consumed so far."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bridge.samples import Sample


class FakePack:
    """`power_kw` of each sample, or `drive_kw` for a motor sample (no power_kw)."""

    def __init__(self, soc: float, kwh: float = 10.0, drive_kw: float = 0.2) -> None:
        self.soc, self.kwh, self.drive_kw = soc, kwh, drive_kw

    def consume(self, samples: Iterator[Sample], limit: int | None = None) -> list[Sample]:
        taken = []
        for sample in samples:
            kw = self.drive_kw if sample.power_kw is None else sample.power_kw
            self.soc -= kw * sample.dt_s / 3600.0 / self.kwh
            taken.append(sample)
            if limit is not None and len(taken) == limit:
                break
        return taken

    def telemetry(self) -> dict[str, Any]:
        return {"soc": self.soc * 100, "temperature": 25.0, "power_kw": 0.0}
