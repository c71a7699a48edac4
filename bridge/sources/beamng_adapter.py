"""The one module that talks to beamngpy 1.36 (optional extra: ``pip install '.[beamng]'``).

beamngpy is imported lazily, so the rest of the bridge works without it. A
:class:`BeamNGSession` opens (or launches) the simulator, gets a vehicle (a scenario of its
own when it owns the simulator; with ``--no-launch`` the player vehicle, or a spawned one),
attaches Electrics and a PowertrainSensor, polls them, and on exit removes the
PowertrainSensor and disconnects (quitting the simulator only if it launched it).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"
SCENARIO_NAME = "ev_twin_bridge"
POWERTRAIN_SENSOR_NAME = "ev_twin_powertrain"


class BeamNGUnavailable(RuntimeError):
    """beamngpy is not installed, or the simulator cannot be reached."""


class SimulatorStalled(RuntimeError):
    """The simulator stopped answering (socket timeout) or closed the connection."""


@dataclass(frozen=True)
class BeamNGSettings:
    """The ``beamng:`` section of config.yaml (command-line flags override it)."""

    beamng_home: str | None = None
    host: str = "127.0.0.1"
    port: int = 25252
    level: str = "smallgrid"
    model: str = "sv1ev3"
    ai_mode: str = "span"  # span | random | traffic | disabled
    ai_speed_kph: float = 60.0
    powertrain_period_s: float = 0.1
    electrics_period_s: float = 0.1
    #: A socket read longer than this means the simulator is frozen.
    socket_timeout_s: float = 30.0
    #: Consecutive failed polls before the run gives up on the simulator.
    max_stalls: int = 3
    #: >0: pause the simulation and advance it this many physics steps per poll.
    steps_per_poll: int = 0
    vehicle_name: str = "ev_twin"
    spawn_pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spawn_rot_quat: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)

    @classmethod
    def from_config(cls, config_file: str | Path | None = None, **overrides: Any) -> BeamNGSettings:
        """Read config.yaml's ``beamng:`` section, then apply non-None overrides."""
        path = Path(config_file) if config_file else DEFAULT_CONFIG
        data: dict[str, Any] = {}
        if path.exists():
            loaded = yaml.safe_load(path.read_text()) or {}
            section = loaded.get("beamng") if isinstance(loaded, dict) else None
            data.update(section or {})
        elif config_file is not None:
            raise FileNotFoundError(f"config file not found: {path}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            logger.warning("ignoring unknown beamng settings: %s", ", ".join(unknown))
        values = {k: v for k, v in data.items() if k in known}
        for key in ("spawn_pos", "spawn_rot_quat"):
            if key in values:
                values[key] = tuple(float(x) for x in values[key])
        return cls(**values)


def import_beamngpy() -> ModuleType:
    """Import beamngpy on first use, with an actionable message when it is missing."""
    try:
        import beamngpy  # noqa: PLC0415 - optional heavy dependency, imported lazily
    except ImportError as exc:
        raise BeamNGUnavailable(
            "beamngpy is not installed: pip install '.[beamng]' (beamngpy==1.36)"
        ) from exc
    return beamngpy


def _stall_errors(bngpy: ModuleType) -> tuple[type[BaseException], ...]:
    from beamngpy.logging import BNGDisconnectedError  # noqa: PLC0415

    return (TimeoutError, socket.timeout, ConnectionError, BNGDisconnectedError)


class BeamNGSession:
    """A connected simulator with one instrumented vehicle. Use as a context manager."""

    def __init__(
        self, settings: BeamNGSettings, *, launch: bool = True, take_player: bool = True
    ) -> None:
        self.settings = settings
        # Launching needs the install folder; without it the bridge can only attach.
        self.launch_requested = launch
        self.launch = launch and settings.beamng_home is not None
        self.take_player = take_player
        self.bng: Any = None
        self.vehicle: Any = None
        self.electrics: Any = None
        self.powertrain: Any = None
        self.owns_scenario = False
        self._bngpy: ModuleType | None = None

    # -- setup -----------------------------------------------------------------------------

    def __enter__(self) -> BeamNGSession:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        bngpy = self._bngpy = import_beamngpy()
        s = self.settings
        self.bng = bngpy.BeamNGpy(
            s.host, s.port, home=s.beamng_home, socket_timeout=s.socket_timeout_s
        )
        logger.info("connecting to BeamNG.tech at %s:%d (launch=%s)", s.host, s.port, self.launch)
        try:
            self.bng.open(launch=self.launch)
        except Exception as exc:
            raise BeamNGUnavailable(self._unavailable(exc)) from exc
        if self.launch:
            self.vehicle = self._scenario_vehicle()
        else:
            self.vehicle = self._attached_vehicle()
        self._attach_sensors()
        self._start_driving()

    def _unavailable(self, exc: BaseException) -> str:
        """Why the simulator could not be opened, and what to pass instead."""
        s = self.settings
        where = f"{s.host}:{s.port}"
        fix = (
            "--beamng-home (or beamng_home in config.yaml beamng:) to launch, or --no-launch "
            f"to attach to a running simulator at {where}"
        )
        error = f"{type(exc).__name__}: {exc}"
        if not self.launch_requested:
            return (
                f"cannot attach to BeamNG.tech at {where} ({error}); start it with its API on "
                f"{where} (--host, --port) or give {fix}"
            )
        if s.beamng_home is None:
            return (
                f"BeamNG.tech is not running at {where} and there is no BeamNG.tech folder to "
                f"launch it from ({error}); give {fix}"
            )
        return f"cannot launch BeamNG.tech from {s.beamng_home} ({error}); give {fix}"

    def _scenario_vehicle(self) -> Any:
        """Own the simulation: a scenario on the configured level with our vehicle."""
        bngpy, s = self._bngpy, self.settings
        assert bngpy is not None
        scenario = bngpy.Scenario(s.level, SCENARIO_NAME, description="EV battery twin bridge")
        vehicle = bngpy.Vehicle(s.vehicle_name, model=s.model)
        scenario.add_vehicle(vehicle, pos=s.spawn_pos, rot_quat=s.spawn_rot_quat)
        scenario.make(self.bng)
        self.bng.scenario.load(scenario)
        self.bng.scenario.start()
        self.owns_scenario = True
        logger.info("scenario %s on %s with %s (%s)", SCENARIO_NAME, s.level, vehicle.vid, s.model)
        return vehicle

    def _attached_vehicle(self) -> Any:
        """Attach: take the player vehicle if it is the configured model, else spawn one."""
        bngpy, s = self._bngpy, self.settings
        assert bngpy is not None
        if self.take_player:
            player = self._player_vehicle()
            if player is not None and player.model == s.model:
                player.connect(self.bng)
                logger.info("taking the player vehicle %s (%s)", player.vid, player.model)
                return player
            if player is not None:
                logger.info("player vehicle is a %s, not %s: spawning one", player.model, s.model)
        vehicle = bngpy.Vehicle(s.vehicle_name, model=s.model)
        if not self.bng.vehicles.spawn(vehicle, s.spawn_pos, s.spawn_rot_quat):
            raise BeamNGUnavailable(f"BeamNG.tech refused to spawn a {s.model}")
        logger.info("spawned %s (%s)", vehicle.vid, s.model)
        return vehicle

    def _player_vehicle(self) -> Any:
        from beamngpy.logging import BNGError, BNGValueError  # noqa: PLC0415

        try:
            vid = self.bng.vehicles.get_player_vehicle_id().get("vid")
            current = self.bng.vehicles.get_current(include_config=False)
        except (BNGError, BNGValueError, KeyError, TypeError, ValueError) as exc:
            logger.info("no player vehicle (%s)", exc)
            return None
        return current.get(vid) if vid else None

    def _attach_sensors(self) -> None:
        bngpy, s = self._bngpy, self.settings
        assert bngpy is not None
        from beamngpy.sensors import Electrics, PowertrainSensor  # noqa: PLC0415

        self.electrics = Electrics()
        self.vehicle.sensors.attach("electrics", self.electrics)
        self.powertrain = PowertrainSensor(
            POWERTRAIN_SENSOR_NAME,
            self.bng,
            self.vehicle,
            physics_update_time=s.powertrain_period_s,
        )
        logger.info("Electrics and PowertrainSensor (%.3f s) attached", s.powertrain_period_s)

    def _start_driving(self) -> None:
        s = self.settings
        if s.ai_mode and s.ai_mode != "disabled":
            self.vehicle.ai.set_mode(s.ai_mode)
            self.vehicle.ai.set_speed(s.ai_speed_kph / 3.6, mode="limit")
            logger.info("AI driving: %s up to %.0f km/h", s.ai_mode, s.ai_speed_kph)
        if s.steps_per_poll > 0:
            self.bng.control.pause()

    # -- polling ---------------------------------------------------------------------------

    def poll(self) -> tuple[Any, dict[str, Any]]:
        """One powertrain poll (raw: int-keyed mapping or ``[]``) and the Electrics values.

        Raises :class:`SimulatorStalled` on a socket timeout or a lost connection.
        """
        assert self._bngpy is not None
        try:
            if self.settings.steps_per_poll > 0:
                self.bng.control.step(self.settings.steps_per_poll)
            readings = self.powertrain.poll()
            self.vehicle.sensors.poll("electrics")
        except _stall_errors(self._bngpy) as exc:
            raise SimulatorStalled(f"{type(exc).__name__}: {exc}") from exc
        return readings, dict(self.electrics)

    # -- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the PowertrainSensor, disconnect; quit the simulator only if launched here."""
        if self.powertrain is not None:
            try:
                self.powertrain.remove()
                logger.info("PowertrainSensor removed")
            except Exception as exc:  # noqa: BLE001 - teardown must go on
                logger.warning("could not remove the PowertrainSensor: %s", exc)
            self.powertrain = None
        if self.bng is None:
            return
        try:
            if self.vehicle is not None and not self.owns_scenario:
                self.vehicle.disconnect()
            if self.bng.process is not None:
                self.bng.close()
            else:
                self.bng.disconnect()
        except Exception as exc:  # noqa: BLE001
            logger.warning("error while disconnecting from BeamNG.tech: %s", exc)
        self.bng = None


def wait_s(period_s: float, started_at: float) -> float:
    """Seconds to sleep so that polls happen every ``period_s`` of wall time."""
    return max(0.0, period_s - (time.monotonic() - started_at))
