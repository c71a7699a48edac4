"""``python -m bridge fleet``: a fleet of different vehicles, usage profiles, climates and
charging habits through the twin (SPEC §6 "Fleets and policies"); see docs/fleet.md.

>>> from bridge.fleet import draw_fleet, run_fleet
>>> fleet = draw_fleet(20, seed=0)
>>> result = run_fleet(fleet, days=2, seed=0, twin_url="http://127.0.0.1:8008")  # doctest: +SKIP
"""

from bridge.fleet.blocks import FleetClient, SampleBlock
from bridge.fleet.climate import CLIMATES, Climate, hourly_ambient
from bridge.fleet.day import DayBuilder, VehicleRun, plan_day
from bridge.fleet.profiles import (
    CLIMATE_SHARES,
    PROFILES,
    ROUTES,
    FleetVehicle,
    Profile,
    draw_fleet,
    profile_shares,
)
from bridge.fleet.run import (
    DEFAULT_CONCURRENCY,
    DEFAULT_SPEEDUP,
    FleetError,
    FleetResult,
    manifest_record,
    run_fleet,
)
from bridge.fleet.traces import PresetInfo, TraceLibrary

__all__ = [
    "CLIMATES",
    "CLIMATE_SHARES",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_SPEEDUP",
    "PROFILES",
    "ROUTES",
    "Climate",
    "DayBuilder",
    "FleetClient",
    "FleetError",
    "FleetResult",
    "FleetVehicle",
    "PresetInfo",
    "Profile",
    "SampleBlock",
    "TraceLibrary",
    "VehicleRun",
    "draw_fleet",
    "hourly_ambient",
    "manifest_record",
    "plan_day",
    "profile_shares",
    "run_fleet",
]
