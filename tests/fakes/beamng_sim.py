"""A small fake BeamNG.tech that speaks beamngpy 1.36's protocol, so the real beamngpy code
runs in tests.

Protocol (beamngpy/connection): TCP, every message is a 4-byte big-endian length followed by
a msgpack map; requests carry ``_id`` and ``type``, responses echo ``_id``. The game engine
(GE) listens on the main port; each vehicle gets a port of its own (StartVehicleConnection).

The simulated car is a rear-motor EV laid out like the ``Model3_2024`` recording (spindles of
the front wheels without parent and ``disconnected``). Simulation time advances by
``advance_per_poll_s`` per PowertrainSensor poll, or by ``Step`` requests. Knobs for the
failure cases: ``empty_polls`` (answer ``[]``), ``freeze_polls`` (never answer: socket
timeout), ``jump_s`` (lose readings: a gap in time).
"""

from __future__ import annotations

import math
import socket
import struct
import threading
from typing import Any

import msgpack

PROTOCOL_VERSION = "v1.27"
FINAL_DRIVE = 7.94
WHEEL_RADIUS_M = 0.33435
CAPACITY_KWH = 75.0


class FakeBeamNG:
    """Threaded fake simulator. ``start()`` binds 127.0.0.1 on free ports."""

    def __init__(
        self,
        *,
        model: str = "Model3_2024",
        player_vid: str | None = "thePlayer",
        advance_per_poll_s: float = 0.1,
        step_s: float = 0.01,
    ) -> None:
        self.model = model
        self.player_vid = player_vid
        self.advance_per_poll_s = advance_per_poll_s
        self.step_s = step_s
        self.lock = threading.Lock()
        self.messages: list[tuple[str, str, dict[str, Any]]] = []
        self.vehicles: dict[str, str] = {player_vid: model} if player_vid else {}
        self.sensors: dict[str, float] = {}  # open powertrain sensors → physics period
        self.time_s = 0.0
        self.last_reading_s = 0.0
        self.stepping = False
        self.ai_mode: str | None = None
        self.empty_polls = 0
        self.freeze_polls = 0
        self.jump_s = 0.0
        self.fuel = 0.9
        self._servers: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._closed = threading.Event()
        self.port = 0
        self.vehicle_port = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeBeamNG:
        self.port = self._listen("ge")
        self.vehicle_port = self._listen("vehicle")
        return self

    def stop(self) -> None:
        self._closed.set()
        for sock in self._servers + self._conns:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> FakeBeamNG:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def types(self, kind: str | None = None) -> list[str]:
        with self.lock:
            return [t for k, t, _ in self.messages if kind is None or k == kind]

    def _listen(self, kind: str) -> int:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        self._servers.append(server)
        thread = threading.Thread(target=self._accept, args=(server, kind), daemon=True)
        thread.start()
        self._threads.append(thread)
        return server.getsockname()[1]

    def _accept(self, server: socket.socket, kind: str) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, kind), daemon=True).start()

    def _serve(self, conn: socket.socket, kind: str) -> None:
        try:
            while not self._closed.is_set():
                header = _recv_exactly(conn, 4)
                if header is None:
                    return
                (length,) = struct.unpack("!I", header)
                body = _recv_exactly(conn, length)
                if body is None:
                    return
                request = msgpack.unpackb(body, raw=False, strict_map_key=False)
                with self.lock:
                    self.messages.append((kind, request.get("type", "?"), request))
                    handler = self._ge if kind == "ge" else self._vehicle
                    response = handler(request)
                if response is None:
                    continue  # frozen: never answer this request
                response["_id"] = request["_id"]
                data = msgpack.packb(response, use_bin_type=True)
                conn.sendall(struct.pack("!I", len(data)) + data)
        except OSError:
            return
        finally:
            conn.close()

    # -- game engine requests --------------------------------------------------------------

    def _ge(self, req: dict[str, Any]) -> dict[str, Any] | None:
        kind = req["type"]
        if kind == "Hello":
            return {"type": "Hello", "protocolVersion": PROTOCOL_VERSION}
        if kind == "GetSystemInfo":
            return {"type": kind, "os": {"type": "Linux"}, "tech": True}
        if kind == "GetEnvironmentPaths":
            return {"type": kind, "home": "/fake/BeamNG.tech", "user": "/fake/user/0.36"}
        if kind == "GetPlayerVehicleID":
            if self.player_vid is None:
                return {"type": "getPlayerVehicleID", "id": -1, "vid": None}
            return {"type": "getPlayerVehicleID", "id": 1000, "vid": self.player_vid}
        if kind == "GetCurrentVehicles":
            result = {
                vid: {"id": str(1000 + i), "name": vid, "model": model, "options": {}}
                for i, (vid, model) in enumerate(self.vehicles.items())
            }
            return {"type": kind, "result": result}
        if kind == "StartVehicleConnection":
            return {"type": kind, "vid": req["vid"], "result": self.vehicle_port}
        if kind == "SpawnVehicle":
            self.vehicles[req["name"]] = req["model"]
            return {"type": "VehicleSpawned", "success": True}
        if kind == "CreateScenario":
            return {"type": kind, "result": f"/levels/{req['level']}/scenarios/{req['name']}.json"}
        if kind == "LoadScenario":
            return {"type": "MapLoaded"}
        if kind == "StartScenario":
            return {"type": "ScenarioStarted"}
        if kind == "OpenPowertrain":
            self.sensors[req["name"]] = float(req["physicsUpdateTime"])
            return {"type": "OpenedPowertrain"}
        if kind == "GetPowertrainId":
            return {"type": kind, "data": 0}
        if kind == "ClosePowertrain":
            self.sensors.pop(req["name"], None)
            return {"type": "ClosedPowertrain"}
        if kind == "PollPowertrainGE":
            return self._poll_powertrain(req)
        if kind == "Pause":
            self.stepping = True
            return {"type": "Paused"}
        if kind == "Resume":
            self.stepping = False
            return {"type": "Resumed"}
        if kind == "Step":
            self.time_s += int(req["count"]) * self.step_s
            return {"type": "Stepped"}
        if kind == "Quit":
            return {"type": "Quit"}
        return {"type": kind, "bngError": f"fake BeamNG does not know {kind}"}

    def _poll_powertrain(self, req: dict[str, Any]) -> dict[str, Any] | None:
        if self.freeze_polls > 0:
            self.freeze_polls -= 1
            return None
        if self.empty_polls > 0:
            self.empty_polls -= 1
            return {"type": "PollPowertrainGE", "data": []}
        if not self.stepping:
            self.time_s += self.advance_per_poll_s
        if self.jump_s:
            self.time_s += self.jump_s
            self.last_reading_s += self.jump_s
            self.jump_s = 0.0
        period = self.sensors.get(req["name"], 0.1)
        readings: dict[int, Any] = {}
        while self.last_reading_s + period <= self.time_s + 1e-9:
            self.last_reading_s += period
            readings[len(readings)] = self.reading(self.last_reading_s)
        self.fuel -= 1e-5 * len(readings)
        return {"type": "PollPowertrainGE", "data": readings if readings else []}

    # -- vehicle requests ------------------------------------------------------------------

    def _vehicle(self, req: dict[str, Any]) -> dict[str, Any] | None:
        kind = req["type"]
        if kind == "Hello":
            return {"type": "Hello", "protocolVersion": PROTOCOL_VERSION}
        if kind == "SensorRequest":
            data: dict[str, Any] = {}
            for name, sensor in req["sensors"].items():
                if sensor["type"] == "Electrics":
                    data[name] = {"values": self.electrics_values()}
                elif sensor["type"] == "State":
                    data[name] = {"state": {"time": self.time_s, "pos": [0, 0, 0]}}
            return {"type": "SensorData", "data": data}
        if kind == "SetAiMode":
            self.ai_mode = req["mode"]
            return {"type": "AiModeSet"}
        if kind == "SetAiSpeed":
            return {"type": "AiSpeedSet"}
        return {"type": kind, "bngError": f"fake vehicle does not know {kind}"}

    # -- the simulated car -----------------------------------------------------------------

    @staticmethod
    def speed_m_s(time_s: float) -> float:
        """Accelerate at 2 m/s² to 15 m/s, then cruise."""
        return min(15.0, 2.0 * time_s)

    def reading(self, time_s: float) -> dict[str, Any]:
        """One PowertrainSensor reading shaped like the Model3_2024 recording."""
        v = self.speed_m_s(time_s)
        wheel_av = v / WHEEL_RADIUS_M
        motor_av = wheel_av * FINAL_DRIVE
        accel = 2.0 if v < 15.0 else 0.0
        wheel_force = 1752.0 * accel + 0.5 * 1.2 * 0.23 * 2.22 * v**2 + 0.007 * 1752 * 9.81
        motor_torque = wheel_force * WHEEL_RADIUS_M / FINAL_DRIVE
        half = wheel_force * WHEEL_RADIUS_M / 2
        spindle = {
            "isBroken": False,
            "mode": "connected",
            "parentOutputIndex": 1.0,
            "inputAV": wheel_av,
            "gearRatio": 1.0,
            "outputAV1": wheel_av,
            "outputTorque1": half,
        }
        free = {
            "isBroken": False,
            "mode": "disconnected",
            "parentOutputIndex": 1.0,
            "inputAV": 0.0,
            "gearRatio": 1.0,
            "outputAV1": wheel_av,
            "outputTorque1": 0.0,
        }
        return {
            "time": time_s,
            "rearMotor": {
                "isBroken": False,
                "outputAV1": motor_av,
                "parentOutputIndex": 0.0,
                "gearRatio": 1.0,
                "outputTorque1": motor_torque,
                "inputAV": 0.0,
            },
            "differential_R": {
                "outputAV1": wheel_av,
                "parentOutputIndex": 1.0,
                "gearRatio": FINAL_DRIVE,
                "inputAV": motor_av,
                "mode": "open",
                "parentName": "rearMotor",
                "outputAV2": wheel_av,
                "outputTorque1": half,
                "outputTorque2": half,
            },
            "wheelaxleRL": {**spindle, "parentName": "differential_R"},
            "wheelaxleRR": {**spindle, "parentName": "differential_R", "parentOutputIndex": 2.0},
            "spindleRL": {**spindle, "parentName": "wheelaxleRL"},
            "spindleRR": {**spindle, "parentName": "wheelaxleRR"},
            "spindleFL": dict(free),
            "spindleFR": dict(free),
        }

    def electrics_values(self) -> dict[str, Any]:
        """Raw Electrics values (beamngpy renames fuelVolume/fuelCapacity itself)."""
        v = self.speed_m_s(self.time_s)
        return {
            "wheelspeed": v,
            "airspeed": v,
            "throttle": 0.4 if v < 15.0 else 0.15,
            "brake": 0.0,
            "fuel": self.fuel,
            "fuelCapacity": CAPACITY_KWH,
            "fuelVolume": self.fuel * CAPACITY_KWH,
            "regenThrottle": 0.0,
            "gear": "D",
            "running": True,
            "signal_left_input": 0,
            "rpm": v / WHEEL_RADIUS_M * FINAL_DRIVE * 60 / (2 * math.pi),
        }


def _recv_exactly(conn: socket.socket, length: int) -> bytes | None:
    chunks = []
    while length > 0:
        chunk = conn.recv(min(65536, length))
        if not chunk:
            return None
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)
