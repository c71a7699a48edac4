"""Live BeamNG.tech source: poll the PowertrainSensor and Electrics, yield samples.

Everything beamngpy-specific lives in :mod:`bridge.sources.beamng_adapter`; this module
only paces the polls and copes with what a live simulator does: empty polls, gaps in the
readings, a frozen simulator (socket timeouts) and a lost connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

from bridge.samples import Sample
from bridge.sources.beamng_adapter import BeamNGSession, BeamNGSettings, SimulatorStalled, wait_s
from bridge.sources.powertrain import DEFAULT_MAX_GAP_S, ReadingIntegrator, normalize_poll

logger = logging.getLogger(__name__)

#: Log once when this many polls in a row returned nothing (simulation paused?).
EMPTY_POLLS_WARNING = 50
#: Summing dt_s in floating point must not cost an extra reading (10 × 0.1 < 1.0).
DURATION_EPS_S = 1e-9


def beamng_samples(
    settings: BeamNGSettings,
    *,
    launch: bool = True,
    duration_s: float | None = None,
    motors: Sequence[str] | None = None,
    ambient_c: float | None = None,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    session_factory: Callable[..., BeamNGSession] = BeamNGSession,
) -> Iterator[Sample]:
    """Samples from a live simulation until ``duration_s`` simulated seconds (None: until
    the simulator goes away or the consumer stops). The PowertrainSensor is removed when the
    generator finishes or is closed."""
    integrator = ReadingIntegrator(motors=motors, ambient_c=ambient_c, max_gap_s=max_gap_s)
    with session_factory(settings, launch=launch) as session:
        stalls = 0
        empty_polls = 0
        while duration_s is None or integrator.elapsed_s < duration_s - DURATION_EPS_S:
            started_at = time.monotonic()
            try:
                raw, electrics = session.poll()
            except SimulatorStalled as exc:
                stalls += 1
                logger.warning(
                    "simulator not answering (%s), %d/%d", exc, stalls, settings.max_stalls
                )
                if stalls >= settings.max_stalls:
                    logger.error("giving up on the simulator after %d failed polls", stalls)
                    break
                continue
            stalls = 0
            integrator.update_electrics(electrics)
            readings = normalize_poll(raw)
            if not readings:
                empty_polls += 1
                if empty_polls == EMPTY_POLLS_WARNING:
                    logger.warning("%d empty powertrain polls in a row (paused?)", empty_polls)
            else:
                empty_polls = 0
            for sample in integrator.feed(readings):
                yield sample
                if duration_s is not None and integrator.elapsed_s >= duration_s - DURATION_EPS_S:
                    break
            if settings.steps_per_poll <= 0:
                time.sleep(wait_s(settings.electrics_period_s, started_at))
    logger.info(
        "BeamNG: %d readings, %.1f s simulated, %d gaps, %d resets",
        integrator.readings,
        integrator.elapsed_s,
        integrator.gaps,
        integrator.resets,
    )
