"""``python -m bridge {cycle,charge,replay,calibrate,beamng,explore,fleet}`` (SPEC §2, §6)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from bridge.cycles import available_cycles
from bridge.poster import (
    UNREACHABLE_LOG_S,
    Poster,
    PosterConfig,
    PosterConflict,
    PosterStopped,
)
from bridge.samples import Sample
from clients.python import DEFAULT_TWIN_URL, TwinClient, TwinConnectionError, TwinHTTPError
from clients.python.client import BATCH_FORMATS
from twin_service.models.aging import MODEL_NAMES

logger = logging.getLogger("bridge")

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"
FALLBACK_VEHICLE = "sv1ev3"
#: Overnight charging target of demo days (--daily-passes) when --charge-to is not given.
DEMO_DAY_CHARGE_TO = 0.9

EXIT_CODES = """\
exit codes:
  0    every sample delivered
  1    samples dropped or not delivered (service unreachable), or another error
  2    bad input (file, preset, option)
  3    simulator unavailable (BeamNG.tech)
  4    the service holds a newer twin of the vehicle (409 rev_conflict)
  130  interrupted (Ctrl-C, SIGTERM)"""
CALIBRATE_EXIT_CODES = """\
exit codes:
  0    fitted
  1    the service failed or has no POST /calibrate, or another error
  2    bad input (file, option; the service's 4xx messages are printed)
  3    service unreachable
  130  interrupted (Ctrl-C, SIGTERM)"""
LOG_GAP_HELP = (
    "longer gaps between readings count as idle (default 1 s for BeamNG polls, 60 s for BDF "
    "rows, 5 s in MDF4/CAN logs)"
)
SIGNAL_MAP_HELP = (
    "YAML map of an MDF4 (.mf4/.mdf) or CAN (.blf/.asc) log's channels to sample fields "
    "(bridge/signal_maps/example.yaml)"
)
DBC_HELP = "DBC that decodes a CAN log's frames (overrides the signal map's dbc:)"
URL = "http://127.0.0.1:8008"
# Not in EXAMPLES: those feed a twin (--vehicle-id); calibrate only asks the service.
CALIBRATE_EXAMPLE = f"""\
  python -m bridge calibrate --twin-url {URL} --vehicle sv1ev3 \\
      tests/fixtures/logs/sv1ev3_drive_20260101.bdf.csv --out sv1ev3.calibrated.json"""
EXAMPLES = {
    "cycle": f"""\
  python -m bridge cycle --twin-url {URL} --vehicle-id ev-1 --vehicle Model3_2024 --fast
  python -m bridge cycle --twin-url {URL} --vehicle-id demo --vehicle Model3_2024 \\
      --speedup 10 --daily-passes 2 --initial-soc 0.5 --state-file demo.state.json""",
    "charge": f"""\
  python -m bridge charge --twin-url {URL} --vehicle-id dcfc --vehicle Model3_2024 \\
      --charger-kw 250 --ambient-c -10 --precondition-min 15""",
    "replay": f"""\
  python -m bridge replay --twin-url {URL} --vehicle-id rec-1 \\
      tests/fixtures/beamng/Model3_2024_powertrain_20250911_123812.json \\
      tests/fixtures/beamng/Model3_2024_electrics_20250911_123812.json
  python -m bridge replay --twin-url {URL} --vehicle-id fleet-7 \\
      fleet7_drive_20260101.mf4 --signal-map fleet7.yaml""",
    "beamng": f"""\
  python -m bridge beamng --twin-url {URL} --vehicle-id bng --no-launch --model Model3_2024""",
    "explore": """\
  python -m bridge explore --no-launch --model sv1ev3 --duration 5""",
}
# Not in EXAMPLES either: a fleet names its twins itself (fleet-0001 …), no --vehicle-id.
FLEET_EXAMPLE = f"""\
  python -m bridge fleet --twin-url {URL} --vehicles 1000 --days 30 --seed 1 --fast \\
      --manifest fleet.json"""
FLEET_EXIT_CODES = """\
exit codes:
  0    every vehicle-day delivered
  1    the service is unreachable or a vehicle-day was not delivered, or another error
  2    bad input (preset, option)
  4    the service already holds the fleet's twins (rerun with --replace)
  130  interrupted (Ctrl-C, SIGTERM)"""


def paced(samples: Iterator[Sample], speedup: float | None) -> Iterator[Sample]:
    """Release samples at ``speedup`` × real time (None: as fast as they are consumed); a
    sample with its own ``speedup`` (a parked car's hours) goes at that one.

    A sample becomes available at the end of the interval it covers; a consumer that falls
    behind catches up without sleeping.
    """
    if not speedup:
        yield from samples
        return
    started_at = time.monotonic()
    wall_s = 0.0
    for sample in samples:
        wall_s += sample.dt_s / (sample.speedup or speedup)
        delay_s = started_at + wall_s - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)
        yield sample


def _config_default_vehicle(config_file: str | None) -> str:
    """The service's ``default_vehicle`` from config.yaml (SPEC: sv1ev3 when unset)."""
    path = Path(config_file) if config_file else DEFAULT_CONFIG
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError:
        data = {}
    value = data.get("default_vehicle") if isinstance(data, dict) else None
    return str(value or FALLBACK_VEHICLE)


# -- argument parsing ----------------------------------------------------------------------


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {value}")
    return number


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"must be within 0..1: {value}")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0: {value}")
    return number


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


# How a source is paced: "paced" (--speedup, real-time factor), "fast" (as fast as the
# service answers, back-pressure instead of drops), "live" (the source keeps its own time,
# e.g. a running simulator: never blocked, overflow dropped and counted).


def _add_url_and_key(group: argparse._ArgumentGroup, endpoint: str) -> None:
    group.add_argument(
        "--twin-url",
        default=os.environ.get("TWIN_URL", DEFAULT_TWIN_URL),
        help=f"service URL (default {DEFAULT_TWIN_URL}, env TWIN_URL)",
    )
    group.add_argument(
        "--api-key",
        default=os.environ.get("TWIN_API_KEY"),
        help=f"Bearer key for {endpoint} (env TWIN_API_KEY)",
    )


def _add_twin_options(parser: argparse.ArgumentParser, *, default_pace: str) -> None:
    twin = parser.add_argument_group("twin service")
    _add_url_and_key(twin, "POST /step")
    twin.add_argument(
        "--batch-format",
        choices=BATCH_FORMATS,
        default="msgpack",
        help="how batches go to POST /step: columns in msgpack, columns in JSON, or JSON rows "
        "(default %(default)s)",
    )
    twin.add_argument(
        "--vehicle-id",
        default="default",
        help="twin name: the service keeps one twin per id (default %(default)s)",
    )
    twin.add_argument("--vehicle", help="preset id (default: config's default_vehicle)")
    twin.add_argument("--config", help="config.yaml to read defaults from")
    twin.add_argument("--demo", action="store_true", help="demo aging (options.demo_mode)")
    twin.add_argument("--time-multiplier", type=_positive, help="aging time multiplier")
    twin.add_argument(
        "--aging-model",
        choices=MODEL_NAMES,
        help="aging model (default: the preset's; GET /models lists them)",
    )
    twin.add_argument("--initial-soc", type=_fraction, help="SOC of a new pack (0..1)")
    twin.add_argument("--state-file", type=Path, help="persist the state here; resume from it")
    twin.add_argument("--live-file", type=Path, help="write the latest telemetry (live_data.json)")
    twin.add_argument("--sample-log", type=Path, help="append every sample sent (JSONL)")
    owner = twin.add_mutually_exclusive_group()
    owner.add_argument(
        "--resume-from-service",
        action="store_true",
        help="continue from the service's stored state of the vehicle (also after a 409)",
    )
    owner.add_argument(
        "--replace",
        action="store_true",
        help="restart the vehicle's twin from this bridge's state (first batch replaces)",
    )

    pace = parser.add_argument_group("pace and batching")
    if default_pace != "live":
        speed = pace.add_mutually_exclusive_group()
        paced_default = " (default 1)" if default_pace == "paced" else ""
        speed.add_argument("--speedup", type=_positive, help="real-time factor" + paced_default)
        fast_help = "as fast as the service answers" + (
            " (default)" if default_pace == "fast" else ""
        )
        speed.add_argument("--fast", action="store_true", help=fast_help)
    pace.add_argument("--batch-size", type=int, help="max samples per request (500; 2000 --fast)")
    pace.add_argument(
        "--batch-interval-s",
        type=_positive,
        default=1.0,
        help="max wall time a sample waits before it is sent (%(default)s)",
    )
    pace.add_argument(
        "--buffer-size",
        type=int,
        default=200_000,
        help="samples kept while the service is down (%(default)s)",
    )
    pace.add_argument(
        "--retry-max-s",
        type=_positive,
        default=30.0,
        help="longest wait between retries (%(default)s)",
    )
    pace.add_argument(
        "--flush-timeout-s",
        type=_positive,
        default=600.0,
        help="how long to keep retrying the rest at the end (%(default)s)",
    )
    pace.add_argument("--no-progress", action="store_true", help="no progress line")
    parser.set_defaults(default_pace=default_pace, fast=False, speedup=None)


def _epilog(*commands: str) -> str:
    examples = "\n".join(EXAMPLES[command] for command in commands)
    return f"examples:\n{examples}\n\n{EXIT_CODES}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description=(
            "Feed the EV battery twin's POST /step. The twin is --vehicle-id (default "
            f"'default') at --twin-url (default {DEFAULT_TWIN_URL}, env TWIN_URL)."
        ),
        epilog=_epilog(*EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("BRIDGE_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    cycle = sub.add_parser(
        "cycle",
        help="standard drive cycles through a road-load model",
        epilog=_epilog("cycle"),
        formatter_class=raw,
    )
    cycle.add_argument(
        "--cycle",
        default="udds",
        help=f"{', '.join(available_cycles())} or a CSV (default %(default)s)",
    )
    cycle.add_argument(
        "--repeat",
        type=int,
        help="passes of the cycle; 0 = forever (default 1 with --fast, else 0)",
    )
    cycle.add_argument("--ambient-c", type=float, help="ambient temperature, °C")
    cycle.add_argument(
        "--sample-hz",
        type=_positive,
        help="resample the 1 Hz trace (e.g. 10); default: the trace's own rate",
    )
    cycle.add_argument(
        "--charge-to",
        type=_fraction,
        help=f"charging stops between cycles up to (default none; {DEMO_DAY_CHARGE_TO} with "
        "--daily-passes)",
    )
    cycle.add_argument(
        "--charge-below",
        type=_fraction,
        default=0.3,
        help="plug in when SOC is below this between cycles or at the park (%(default)s)",
    )
    cycle.add_argument(
        "--charge-kw", type=_positive, default=11.0, help="charging power (%(default)s kW)"
    )
    cycle.add_argument(
        "--daily-passes",
        type=_count,
        default=0,
        help="demo days: N passes, then parked (and charged) for the rest of the 24 h; "
        "0 = passes back to back (default)",
    )
    cycle.add_argument(
        "--park-speedup",
        type=_positive,
        default=3600.0,
        help="real-time factor of the parked hours (%(default)g: an hour per second)",
    )
    _add_twin_options(cycle, default_pace="paced")

    charge = sub.add_parser(
        "charge",
        help="a DC fast-charge session: minutes from one SOC to another, peak heat",
        epilog=_epilog("charge"),
        formatter_class=raw,
    )
    charge.add_argument(
        "--charger-kw", type=_positive, default=250.0, help="charger power (%(default)s kW)"
    )
    charge.add_argument("--from-soc", type=_fraction, default=0.1, help="start (%(default)s)")
    charge.add_argument("--to-soc", type=_fraction, default=0.8, help="target (%(default)s)")
    charge.add_argument("--ambient-c", type=float, default=25.0, help="ambient, °C (%(default)s)")
    charge.add_argument(
        "--pack-temperature-c", type=float, help="pack temperature of a new pack (default ambient)"
    )
    charge.add_argument(
        "--precondition-min",
        type=float,
        default=0.0,
        help="minutes of preconditioning before plugging in (%(default)s)",
    )
    _add_twin_options(charge, default_pace="fast")

    replay = sub.add_parser(
        "replay",
        help="recorded BeamNG JSON, CSV, JSONL, BDF, MDF4 or CAN logs",
        epilog=_epilog("replay"),
        formatter_class=raw,
    )
    replay.add_argument("files", nargs="+", type=Path, metavar="FILE")
    replay.add_argument("--motors", type=_names, help="motor device names, comma-separated")
    replay.add_argument("--ambient-c", type=float, help="ambient temperature, °C")
    replay.add_argument("--max-gap-s", type=_positive, help=LOG_GAP_HELP)
    replay.add_argument("--signal-map", type=Path, metavar="FILE", help=SIGNAL_MAP_HELP)
    replay.add_argument("--dbc", type=Path, metavar="FILE", help=DBC_HELP)
    _add_twin_options(replay, default_pace="fast")

    calibrate = sub.add_parser(
        "calibrate",
        help="fit the pack to a log with measured voltage (POST /calibrate)",
        description="Read a log with measured voltage (CSV, JSONL, a /step body, a Battery "
        "Data Format file, or MDF4/CAN with --signal-map), fit the pack's parameters to it in "
        "one POST /calibrate and print them against the preset's; --out saves the fitted "
        "vehicle and state for /step.",
        epilog=f"examples:\n{CALIBRATE_EXAMPLE}\n\n{CALIBRATE_EXIT_CODES}",
        formatter_class=raw,
    )
    calibrate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    calibrate.add_argument(
        "--out", type=Path, help='write the fitted {"vehicle", "state"} here (JSON)'
    )
    calibrate.add_argument(
        "--parameters",
        type=_names,
        help="parameters to fit, comma-separated (capacity_ah, r0_ohm, r1_ohm, tau1_s, "
        "ocv_offset_v, initial_soc; default: all the data supports)",
    )
    calibrate.add_argument("--initial-soc", type=_fraction, help="SOC at the log's start (0..1)")
    calibrate.add_argument("--ambient-c", type=float, help="ambient temperature, °C")
    calibrate.add_argument("--max-gap-s", type=_positive, help=LOG_GAP_HELP)
    calibrate.add_argument("--signal-map", type=Path, metavar="FILE", help=SIGNAL_MAP_HELP)
    calibrate.add_argument("--dbc", type=Path, metavar="FILE", help=DBC_HELP)
    service = calibrate.add_argument_group("twin service")
    _add_url_and_key(service, "POST /calibrate")
    service.add_argument(
        "--vehicle",
        help="preset id (default: the one the file names, else config's default_vehicle)",
    )
    service.add_argument("--config", help="config.yaml to read defaults from")
    service.add_argument(
        "--timeout-s",
        type=_positive,
        default=300.0,
        help="how long to wait for the fit (%(default)s)",
    )

    beamng = sub.add_parser(
        "beamng",
        help="live BeamNG.tech via beamngpy",
        epilog=_epilog("beamng"),
        formatter_class=raw,
    )
    _add_beamng_options(beamng)
    beamng.add_argument("--duration", type=_positive, help="stop after S simulated seconds")
    beamng.add_argument("--motors", type=_names, help="motor device names, comma-separated")
    beamng.add_argument("--ambient-c", type=float, help="ambient temperature, °C")
    beamng.add_argument(
        "--max-gap-s",
        type=_positive,
        default=1.0,
        help="longer gaps between readings count as idle (%(default)s)",
    )
    _add_twin_options(beamng, default_pace="live")

    explore = sub.add_parser(
        "explore",
        help="save what BeamNG's sensors report",
        epilog=_epilog("explore"),
        formatter_class=raw,
    )
    _add_beamng_options(explore)
    explore.add_argument("--config", help="config.yaml with a beamng: section")
    explore.add_argument(
        "--duration", type=_positive, default=5.0, help="seconds to record (%(default)s)"
    )
    explore.add_argument("--out-dir", type=Path, default=Path("battery_sensor_data"))
    _add_fleet_parser(sub)
    return parser


def _add_fleet_parser(sub: Any) -> None:
    from bridge.fleet import CLIMATES, DEFAULT_CONCURRENCY, DEFAULT_SPEEDUP, PROFILES

    fleet = sub.add_parser(
        "fleet",
        help="a fleet of vehicles, usage profiles, climates and charging habits",
        description="Draw a fleet (fleet-0001 …: profiles "
        + ", ".join(f"{name} {p.share:.0%}" for name, p in PROFILES.items())
        + "; climates "
        + ", ".join(CLIMATES)
        + ") and simulate its days through POST /step, the whole fleet a round of days at "
        "a time. docs/fleet.md describes the profiles, climates and habits.",
        epilog=f"examples:\n{FLEET_EXAMPLE}\n\n{FLEET_EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fleet.add_argument("--vehicles", type=_count, default=100, help="fleet size (%(default)s)")
    fleet.add_argument("--days", type=_count, default=30, help="days to simulate (%(default)s)")
    fleet.add_argument("--seed", type=int, default=0, help="the draw's seed (%(default)s)")
    fleet.add_argument(
        "--presets",
        type=_names,
        help="preset ids to draw from, comma-separated (default sv1ev3,Model3_2024)",
    )
    fleet.add_argument(
        "--start-day",
        type=int,
        default=1,
        help="day of the year the run starts on (1 = 1 January, a Monday; %(default)s)",
    )
    fleet.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="vehicles posted at the same time (%(default)s)",
    )
    fleet.add_argument(
        "--manifest", type=Path, help="write the drawn fleet (and at the end its results) here"
    )
    twin = fleet.add_argument_group("twin service")
    _add_url_and_key(twin, "POST /step")
    twin.add_argument(
        "--batch-format",
        choices=BATCH_FORMATS,
        default="msgpack",
        help="how batches go to POST /step (default %(default)s)",
    )
    twin.add_argument(
        "--aging-model", choices=MODEL_NAMES, help="aging model (default: the preset's)"
    )
    twin.add_argument("--demo", action="store_true", help="demo aging (options.demo_mode)")
    twin.add_argument("--time-multiplier", type=_positive, help="aging time multiplier")
    twin.add_argument(
        "--replace",
        action="store_true",
        help="restart twins the service already holds (fleet ids of an earlier run)",
    )
    pace = fleet.add_argument_group("pace")
    speed = pace.add_mutually_exclusive_group()
    speed.add_argument(
        "--speedup",
        type=_positive,
        help=f"simulated days at this real-time factor (default {DEFAULT_SPEEDUP:g}: a day "
        "in 24 s), a round of one day for all vehicles at a time",
    )
    speed.add_argument("--fast", action="store_true", help="as fast as the service answers")
    pace.add_argument(
        "--round-days",
        type=int,
        default=1,
        help="days of every vehicle per round (and per request): fewer, larger requests "
        "(default %(default)s)",
    )
    pace.add_argument(
        "--drive-window-s",
        type=float,
        default=1.0,
        help="coarsen drives to windows of this many seconds (fewer samples, a little less "
        "exact; default %(default)g: the cycles' own 1 s)",
    )
    pace.add_argument(
        "--flush-timeout-s",
        type=_positive,
        default=120.0,
        help="give up when a vehicle-day is not delivered within this (%(default)s)",
    )
    pace.add_argument("--no-progress", action="store_true", help="no progress line")


def _add_beamng_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("BeamNG.tech (defaults: config.yaml beamng:)")
    group.add_argument("--host")
    group.add_argument("--port", type=int)
    group.add_argument(
        "--no-launch",
        action="store_true",
        help="attach to a running simulator (player vehicle, else spawn)",
    )
    group.add_argument("--model", help="vehicle model")
    group.add_argument("--beamng-home", help="BeamNG.tech folder (needed to launch)")
    group.add_argument("--level")
    group.add_argument(
        "--steps-per-poll", type=int, help="pause and step the simulation N physics steps per poll"
    )
    group.add_argument(
        "--socket-timeout-s", type=_positive, help="a frozen simulator is detected after this long"
    )


# -- running a source ----------------------------------------------------------------------


def _poster_config(
    args: argparse.Namespace, vehicle: str, pace: str, source: dict[str, Any] | None = None
) -> PosterConfig:
    options: dict[str, Any] = {}
    if args.demo:
        options["demo_mode"] = True
    if args.time_multiplier is not None:
        options["time_multiplier"] = args.time_multiplier
    if args.aging_model:
        options["aging_model"] = args.aging_model
    fast = pace == "fast"
    batch = args.batch_size or (2000 if fast else 500)
    # Back-pressure needs only a few batches of room; a live source needs hours of it.
    buffer = min(args.buffer_size, 4 * batch) if fast else args.buffer_size
    return PosterConfig(
        vehicle_id=args.vehicle_id,
        vehicle=vehicle,
        options=options or None,
        max_batch_samples=batch,
        max_batch_age_s=args.batch_interval_s,
        max_buffer_samples=max(buffer, batch),
        block_when_full=fast,
        retry_max_s=args.retry_max_s,
        unreachable_log_s=_env_seconds("BRIDGE_UNREACHABLE_LOG_S", UNREACHABLE_LOG_S),
        initial_state=_initial_state(args),
        state_file=args.state_file,
        live_file=args.live_file,
        sample_log=args.sample_log,
        progress=not args.no_progress,
        source=source,
        replace=args.replace,
        resume_from_service=args.resume_from_service,
    )


def _env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        seconds = float(value) if value else default
    except ValueError:
        seconds = default
    return seconds if seconds > 0 else default


def _initial_state(args: argparse.Namespace) -> dict[str, Any] | None:
    """The seed of a new pack (a state file, when given and present, wins in the poster)."""
    seed: dict[str, Any] = {}
    if args.initial_soc is not None:
        seed["soc"] = args.initial_soc
    temperature = getattr(args, "initial_temperature_c", None)
    if temperature is not None:
        seed["temperature_c"] = temperature
    return seed or None


def _pace(args: argparse.Namespace) -> str:
    if args.fast:
        return "fast"
    if args.speedup:
        return "paced"
    return str(args.default_pace)


def run_source(
    args: argparse.Namespace,
    client: TwinClient,
    vehicle: str,
    make_samples: Callable[[Poster], Iterator[Sample]],
    source: dict[str, Any] | None = None,
) -> int:
    """Drive one source through the poster; handles Ctrl-C / SIGTERM and the final flush.

    ``source`` names what makes the samples (their positions go to the state file); a
    source that ran to its end is marked finished there, so the next run starts it afresh.
    """
    pace = _pace(args)
    speedup = (args.speedup or 1.0) if pace == "paced" else None
    logger.info(
        "posting to %s as vehicle %s (preset %s); --twin-url (env TWIN_URL) and --vehicle-id "
        "change them",
        args.twin_url,
        args.vehicle_id,
        vehicle,
    )
    try:
        poster = Poster(client, _poster_config(args, vehicle, pace, source)).start()
    except PosterStopped as exc:
        logger.error("stopped: %s", exc)
        return 4 if isinstance(exc, PosterConflict) else 1
    started_at = time.monotonic()
    code = 0
    samples = make_samples(poster)
    try:
        for sample in paced(samples, speedup):
            poster.submit(sample)
    except KeyboardInterrupt:
        code = 130
        logger.warning(
            "interrupted: sending %d buffered samples (Ctrl-C again to quit now)", poster.buffered
        )
    except PosterStopped as exc:
        code = 1
        logger.error("stopped: %s", exc)
    except Exception as exc:  # noqa: BLE001 - what was read so far is still sent below
        code = _exit_code(exc)
        logger.error("source failed: %s", exc, exc_info=code == 1)
    finally:
        close = getattr(samples, "close", None)  # a generator: lets a live source clean up
        if close is not None:  # (the PowertrainSensor is removed)
            close()
    source_ended = code == 0
    flush_s = args.flush_timeout_s if code != 130 else min(args.flush_timeout_s, 30.0)
    try:
        delivered = poster.close(timeout_s=flush_s)
        if source_ended and delivered:
            poster.mark_finished()  # (samples dropped or rejected on the way are lost for good)
    except KeyboardInterrupt:
        poster.abort()
        code = 130
    if code in (0, 1) and isinstance(poster.fatal, PosterConflict):
        code = 4
    elif code == 0 and _lost(poster):
        code = 1
    _summary(poster, time.monotonic() - started_at)
    return code


def _lost(poster: Poster) -> int:
    """Samples the service did not get: still buffered, dropped (buffer full) or rejected."""
    stats = poster.stats
    return poster.buffered + stats.samples_dropped + stats.samples_rejected


def _exit_code(exc: BaseException) -> int:
    """2: bad input (file, preset, option), 3: simulator unavailable, 1: anything else
    (4, set in run_source: the service holds a newer twin of the vehicle)."""
    from bridge.sources.beamng_adapter import BeamNGUnavailable

    if isinstance(exc, BeamNGUnavailable):
        return 3
    if isinstance(exc, LookupError | ValueError | OSError):
        return 2
    return 1


def _summary(poster: Poster, wall_s: float) -> None:
    """The last line of every run: delivered, not delivered, dropped, then the pack."""
    stats = poster.stats
    state = poster.state or {}
    km = state.get("total_distance_km")
    requests = f"{stats.batches:,} request" + ("" if stats.batches == 1 else "s")
    line = f"done: {stats.samples_sent:,} samples delivered in {requests}"
    if stats.failed_attempts:
        line += f" ({stats.failed_attempts:,} failed attempts)"
    if poster.buffered:
        line += f", {poster.buffered:,} buffered samples NOT delivered ({poster.unsent_reason})"
    else:
        line += ", 0 buffered samples left undelivered"
    line += f", {stats.samples_dropped:,} dropped"
    if stats.samples_dropped:
        line += " (buffer full)"
    if stats.samples_rejected:
        line += f", {stats.samples_rejected:,} rejected by the service"
    line += f"; {wall_s:.1f} s wall"
    if km:
        net_kwh = state.get("energy_discharged_kwh", 0.0) - state.get("energy_charged_kwh", 0.0)
        line += f", {km:.3f} km, {net_kwh / km * 1000:.1f} Wh/km net at the terminals"
    if "soc" in state:
        line += f", SOC {state['soc'] * 100:.2f} %, SOH {state.get('soh', 1.0) * 100:.4f} %"
    (logger.warning if _lost(poster) else logger.info)(line)


def _client(args: argparse.Namespace) -> TwinClient:
    # TWIN_READ_KEY: for reads, and for POST /step when the service sets only a read key.
    read_key = os.environ.get("TWIN_READ_KEY") or None
    return TwinClient(
        args.twin_url, api_key=args.api_key, read_key=read_key, batch_format=args.batch_format
    )


def cmd_cycle(args: argparse.Namespace) -> int:
    from bridge.presets import roadload_params
    from bridge.sources.cycle import ChargeStop, cycle_samples

    vehicle = args.vehicle or _config_default_vehicle(args.config)
    repeat = args.repeat if args.repeat is not None else (1 if _pace(args) == "fast" else 0)
    daily = args.daily_passes
    charge_to = args.charge_to
    if charge_to is None and daily:
        charge_to = DEMO_DAY_CHARGE_TO
    charge = None
    if charge_to is not None:
        charge = ChargeStop(to=charge_to, below=args.charge_below, power_kw=args.charge_kw)
    park_speedup = None
    if _pace(args) == "paced":  # never slower than the drive
        park_speedup = max(args.park_speedup, args.speedup or 1.0)
    if daily:
        logger.info(
            "demo days: %d × %s, then parked for the rest of the 24 h (plugged in below "
            "%.0f %% SOC, to %.0f %% at %g kW)%s",
            daily,
            args.cycle,
            args.charge_below * 100,
            charge_to * 100 if charge_to is not None else 0,
            args.charge_kw,
            f"; parked hours at {park_speedup:g}× real time" if park_speedup else "",
        )
    with _client(args) as client:
        params = roadload_params(vehicle, client)

        def make(poster: Poster) -> Iterator[Sample]:
            return cycle_samples(
                args.cycle,
                params,
                repeat=repeat or None,
                ambient_c=args.ambient_c,
                sample_hz=args.sample_hz,
                charge=charge,
                soc_feedback=poster.current_soc,
                start=poster.resume_position,
                daily_passes=daily,
                park_speedup=park_speedup,
            )

        source: dict[str, Any] = {"kind": "cycle", "cycle": args.cycle, "sample_hz": args.sample_hz}
        if daily:  # positions of demo days are only resumed by demo days of the same length
            source["daily_passes"] = daily
        return run_source(args, client, vehicle, make, source)


def cmd_charge(args: argparse.Namespace) -> int:
    from bridge.sources.charge import ChargeReport, ChargeSession, charge_samples

    vehicle = args.vehicle or _config_default_vehicle(args.config)
    session = ChargeSession(
        charger_kw=args.charger_kw,
        from_soc=args.from_soc,
        to_soc=args.to_soc,
        ambient_c=args.ambient_c,
        precondition_min=args.precondition_min,
    )
    if args.initial_soc is None:
        args.initial_soc = args.from_soc
    args.initial_temperature_c = (
        args.pack_temperature_c if args.pack_temperature_c is not None else args.ambient_c
    )
    report = ChargeReport()
    with _client(args) as client:

        def make(poster: Poster) -> Iterator[Sample]:
            def telemetry() -> dict[str, Any] | None:
                poster.flush()
                response = poster.last_response
                return None if response is None else dict(response.get("telemetry") or {})

            return charge_samples(session, telemetry, report, start=poster.resume_position)

        source = {"kind": "charge", "charger_kw": args.charger_kw, "to_soc": args.to_soc,
                  "precondition_min": args.precondition_min}  # fmt: skip
        code = run_source(args, client, vehicle, make, source)
    start = report.soc[0] if report.soc else args.from_soc
    line = report.summary(max(session.from_soc, start), session.to_soc)
    print(f"charge {vehicle} at {args.charger_kw:g} kW, {args.ambient_c:g} °C: {line}")
    return code


def cmd_replay(args: argparse.Namespace) -> int:
    from bridge.sources.replay import replay_samples
    from bridge.sources.signal_map import load_signal_map

    # A bad map fails here (exit 2), before the service is asked.
    signal_map = load_signal_map(args.signal_map) if args.signal_map else None

    def make(poster: Poster) -> Iterator[Sample]:
        start = poster.resume_position
        return replay_samples(
            args.files,
            motors=args.motors,
            ambient_c=args.ambient_c,
            max_gap_s=args.max_gap_s,
            start=int(start["index"]) if start else 0,
            signal_map=signal_map,
            dbc=args.dbc,
        )

    source: dict[str, Any] = {"kind": "replay", "files": [str(path) for path in args.files]}
    if args.signal_map:  # another map makes other samples: positions do not carry over
        source["signal_map"] = str(args.signal_map)
    with _client(args) as client:
        vehicle = args.vehicle or _recording_preset(
            args.files, client, _config_default_vehicle(args.config)
        )
        return run_source(args, client, vehicle, make, source)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from bridge.calibrate import load_samples, run

    samples = load_samples(
        args.files,
        ambient_c=args.ambient_c,
        max_gap_s=args.max_gap_s,
        signal_map=args.signal_map,
        dbc=args.dbc,
    )
    read_key = os.environ.get("TWIN_READ_KEY") or None
    with TwinClient(
        args.twin_url, api_key=args.api_key, read_key=read_key, timeout_s=args.timeout_s
    ) as client:
        vehicle = args.vehicle or _recording_preset(
            args.files, client, _config_default_vehicle(args.config)
        )
        return run(
            client,
            samples,
            vehicle=vehicle,
            source=", ".join(str(path) for path in args.files),
            out=args.out,
            initial_soc=args.initial_soc,
            parameters=args.parameters,
        )


def _recording_preset(files: list[Path], client: TwinClient, fallback: str) -> str:
    """The preset the recordings name (metadata, else file name), else ``fallback``."""
    from bridge.presets import match_preset, preset_ids
    from bridge.sources.replay import recording_vehicles

    named = list(recording_vehicles(files))
    if not named:
        logger.info("the recordings name no vehicle: preset %s (--vehicle sets it)", fallback)
        return fallback
    ids = preset_ids(client)
    for name, where in named:
        preset = match_preset(name, ids)
        if preset is not None:
            logger.info("preset %s, from %s (--vehicle overrides it)", preset, where)
            return preset
    name, where = named[0]
    logger.info(
        "no preset named %r (from %s; presets: %s): preset %s (--vehicle sets it)",
        name,
        where,
        ", ".join(ids) or "-",
        fallback,
    )
    return fallback


def _beamng_settings(args: argparse.Namespace) -> Any:
    from bridge.sources.beamng_adapter import BeamNGSettings

    return BeamNGSettings.from_config(
        args.config,
        host=args.host,
        port=args.port,
        model=args.model,
        beamng_home=args.beamng_home,
        level=args.level,
        steps_per_poll=args.steps_per_poll,
        socket_timeout_s=args.socket_timeout_s,
    )


def _twin_vehicle_for_model(model: str, client: TwinClient, fallback: str) -> str:
    """Use the BeamNG model as the preset when the service knows it, else the default."""
    try:
        client.preset(model)
        return model
    except KeyError:
        pass
    except (TwinConnectionError, TwinHTTPError):
        from bridge.presets import local_preset

        try:
            local_preset(model)
            return model
        except LookupError:
            pass
    logger.info("no preset named %r: the twin uses %r", model, fallback)
    return fallback


def cmd_beamng(args: argparse.Namespace) -> int:
    from bridge.sources.beamng import beamng_samples

    settings = _beamng_settings(args)

    def make(poster: Poster) -> Iterator[Sample]:
        return beamng_samples(
            settings,
            launch=not args.no_launch,
            duration_s=args.duration,
            motors=args.motors,
            ambient_c=args.ambient_c,
            max_gap_s=args.max_gap_s,
        )

    with _client(args) as client:
        vehicle = args.vehicle or _twin_vehicle_for_model(
            settings.model, client, _config_default_vehicle(args.config)
        )
        return run_source(args, client, vehicle, make)


def cmd_fleet(args: argparse.Namespace) -> int:
    from bridge.fleet import DEFAULT_SPEEDUP, FleetError, draw_fleet, run_fleet

    options: dict[str, Any] = {}
    if args.demo:
        options["demo_mode"] = True
    if args.time_multiplier is not None:
        options["time_multiplier"] = args.time_multiplier
    if args.aging_model:
        options["aging_model"] = args.aging_model
    fleet = draw_fleet(args.vehicles, args.seed, args.presets)
    try:
        with _client(args) as client:
            result = run_fleet(
                fleet,
                args.days,
                seed=args.seed,
                client=client,
                concurrency=args.concurrency,
                start_day=args.start_day,
                speedup=None if args.fast else (args.speedup or DEFAULT_SPEEDUP),
                options=options or None,
                replace=args.replace,
                manifest=args.manifest,
                progress=not args.no_progress,
                flush_timeout_s=args.flush_timeout_s,
                drive_window_s=args.drive_window_s,
                round_days=args.round_days,
            )
    except FleetError as exc:
        logger.error("%s", exc)
        return exc.code
    return result.code


def cmd_explore(args: argparse.Namespace) -> int:
    from bridge.sources.explore import explore

    settings = _beamng_settings(args)
    explore(settings, out_dir=args.out_dir, duration_s=args.duration, launch=not args.no_launch)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "cycle": cmd_cycle,
    "charge": cmd_charge,
    "replay": cmd_replay,
    "calibrate": cmd_calibrate,
    "beamng": cmd_beamng,
    "explore": cmd_explore,
    "fleet": cmd_fleet,
}


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = getattr(logging, args.log_level.upper())
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # beamngpy sets its own loggers to DEBUG
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))  # one line per request
    # SIGTERM (docker stop, supervisors) and SIGINT stop the run the same way: flush, save.
    # SIGINT is set explicitly because a shell starts background jobs with it ignored.
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = _exit_code(exc)
        if code == 1:
            raise
        logger.error("%s", exc, exc_info=level <= logging.DEBUG)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        signal.signal(signal.SIGINT, previous_sigint)


if __name__ == "__main__":
    sys.exit(main())
