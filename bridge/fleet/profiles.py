"""Usage profiles, charging habits and the reproducible draw of a fleet.

A fleet of ``n`` vehicles gets its profiles by quota (largest remainder of ``n × share``,
then shuffled with the seed), so the shares hold exactly up to rounding for any ``n``; its
climates and presets likewise (equal shares of the presets asked for). Every vehicle then
draws its own parameters (daily distance, charging habits, departure time, …) from a random
generator seeded with ``(seed, index)``. The same seed and size give the same fleet.

Distances are calendar means (km per day over all days of the week, driving or not). The
profile numbers are assumptions of this simulation, chosen to span realistic usage; the
orders of magnitude they follow are noted per profile (``source``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bridge.fleet.climate import CLIMATES

DEFAULT_PRESETS = ("sv1ev3", "Model3_2024")


@dataclass(frozen=True)
class Route:
    """Drive cycles a trip is made of: ``head`` once, ``body`` repeated (and the last pass
    cut at a stop) until the trip's distance is reached, then ``tail`` once."""

    name: str
    body: tuple[str, ...]
    head: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()
    description: str = ""


ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        Route("wltc", ("wltc",), description="WLTC class 3b: urban, suburban, rural, motorway"),
        Route("udds", ("udds",), description="EPA UDDS: urban with a short expressway part"),
        Route(
            "city",
            ("wltc3_low", "wltc3b_medium", "udds"),
            description="WLTC low and medium phases and UDDS in turn: stop-and-go city",
        ),
        Route(
            "motorway",
            ("hwfet", "wltc3_extrahigh"),
            head=("wltc3_low",),
            tail=("wltc3_low",),
            description="a WLTC low phase out of town, EPA HWFET and the WLTC extra-high "
            "phase in turn, a WLTC low phase into town",
        ),
        Route("short", ("wltc3_low",), description="WLTC low phase: short urban trips"),
    )
}

Choices = tuple[tuple[Any, float], ...]  # (value, weight)


@dataclass(frozen=True)
class Profile:
    """How a kind of vehicle is used and charged. Ranges are drawn uniformly per vehicle,
    choices by weight; ``km_median``/``km_sigma`` give a log-normal daily distance."""

    name: str
    share: float
    description: str
    km_median: float
    km_sigma: float
    km_range: tuple[float, float]
    routes: Choices
    dc_fast_share: tuple[float, float]
    plug_in_soc: tuple[float, float]
    home_charge_limit: Choices
    home_ac_kw: Choices
    depart_h: tuple[float, float]
    #: Share of the days with driving (only ``rarely_driven`` leaves out days at random).
    drive_probability: tuple[float, float] = (1.0, 1.0)
    source: str = ""


#: Home charger powers: 3.7 kW (16 A single phase), 7.4 kW (32 A single phase), 11 kW
#: (16 A three phase) — the usual IEC 61851 mode 3 wallbox ratings.
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="commute",
            share=0.55,
            description="weekday round trip to work (leaves home in the morning, back after "
            "~9 h), a leisure trip on half of the weekend days",
            km_median=38.0,
            km_sigma=0.45,
            km_range=(8.0, 120.0),
            routes=(("wltc", 0.6), ("udds", 0.4)),
            dc_fast_share=(0.0, 0.10),
            plug_in_soc=(0.3, 0.7),
            home_charge_limit=((0.8, 0.45), (0.9, 0.35), (1.0, 0.2)),
            home_ac_kw=((3.7, 0.15), (7.4, 0.5), (11.0, 0.35)),
            depart_h=(6.5, 9.0),
            source="assumed; about the average car's 30-50 km a day (≈13,000 km a year in "
            "Germany per KBA, ≈11,000-13,000 miles a year per US vehicle per FHWA)",
        ),
        Profile(
            name="taxi",
            share=0.15,
            description="six shifts a week of city fares (3-15 km) with waits of 3-15 min "
            "and a 30-min break; charges at home at night and at DC chargers",
            km_median=170.0,
            km_sigma=0.2,
            km_range=(100.0, 260.0),
            routes=(("city", 0.6), ("udds", 0.4)),
            dc_fast_share=(0.3, 0.7),
            plug_in_soc=(0.6, 0.85),
            home_charge_limit=((0.9, 0.5), (1.0, 0.5)),
            home_ac_kw=((7.4, 0.3), (11.0, 0.7)),
            depart_h=(5.0, 12.0),
            source="assumed; city taxis cover roughly 50,000-70,000 km a year",
        ),
        Profile(
            name="long_distance",
            share=0.15,
            description="weekday trip out of town and back on motorways (field service, "
            "sales), a trip on some weekend days; DC charging en route",
            km_median=160.0,
            km_sigma=0.35,
            km_range=(60.0, 400.0),
            routes=(("motorway", 1.0),),
            dc_fast_share=(0.2, 0.5),
            plug_in_soc=(0.4, 0.7),
            home_charge_limit=((0.8, 0.3), (0.9, 0.4), (1.0, 0.3)),
            home_ac_kw=((7.4, 0.4), (11.0, 0.6)),
            depart_h=(6.0, 9.0),
            source="assumed; high-mileage company cars run 40,000-60,000 km a year",
        ),
        Profile(
            name="rarely_driven",
            share=0.15,
            description="a short round trip on 15-40 % of the days, parked in between",
            km_median=6.0,
            km_sigma=0.5,
            km_range=(1.0, 20.0),
            routes=(("short", 0.5), ("udds", 0.5)),
            dc_fast_share=(0.0, 0.05),
            plug_in_soc=(0.2, 0.4),
            home_charge_limit=((0.8, 0.4), (0.9, 0.3), (1.0, 0.3)),
            home_ac_kw=((3.7, 0.4), (7.4, 0.6)),
            depart_h=(9.0, 16.0),
            drive_probability=(0.15, 0.4),
            source="assumed; second cars and city cars of ~2,000 km a year",
        ),
    )
}

#: Climates of the fleet (shares of the vehicles).
CLIMATE_SHARES: dict[str, float] = {
    "phoenix": 0.15,
    "munich": 0.2,
    "london": 0.2,
    "oslo": 0.15,
    "minneapolis": 0.15,
    "singapore": 0.15,
}


@dataclass(frozen=True)
class FleetVehicle:
    """One drawn vehicle (every field goes to the manifest)."""

    vehicle_id: str  # fleet-0001 …
    index: int  # 0-based
    preset: str  # a preset id of the twin
    profile: str
    climate: str
    daily_km: float  # mean over all days (calendar mean)
    home_charge_limit: float  # SOC the home AC charge stops at
    plug_in_soc: float  # below this SOC the driver charges
    dc_fast_share: float  # share of the charging energy wanted from DC fast charging
    home_ac_kw: float
    annual_mean_ambient_c: float
    route: str  # ROUTES key: the drive cycles of its trips
    depart_h: float  # first departure of a driving day, local time
    drive_probability: float  # share of the days with driving (1 but for rarely driven)
    dc_target_soc: float  # a DC session charges to this
    initial_soc: float  # the new pack's SOC

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def vehicle_id(index: int) -> str:
    return f"fleet-{index + 1:04d}"


def quota(n: int, shares: Mapping[str, float]) -> list[str]:
    """``n`` names in the given shares (largest remainder; ties in the order given)."""
    total = sum(shares.values())
    if n < 0 or total <= 0:
        raise ValueError("need n ≥ 0 and positive shares")
    exact = {name: n * share / total for name, share in shares.items()}
    counts = {name: math.floor(value) for name, value in exact.items()}
    order = sorted(exact, key=lambda name: counts[name] - exact[name])  # largest remainder
    for name in order[: n - sum(counts.values())]:
        counts[name] += 1
    return [name for name in shares for _ in range(counts[name])]


def _pick(rng: np.random.Generator, choices: Choices) -> Any:
    weights = np.array([w for _, w in choices], dtype=float)
    return choices[int(rng.choice(len(choices), p=weights / weights.sum()))][0]


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(low if high <= low else rng.uniform(low, high))


def draw_vehicle(
    index: int, seed: int, preset: str, profile_name: str, climate_name: str
) -> FleetVehicle:
    """The parameters of vehicle ``index`` (its own generator: ``(seed, index)``)."""
    profile = PROFILES[profile_name]
    rng = np.random.default_rng([seed, 1, index])
    low, high = profile.km_range
    km = float(np.clip(profile.km_median * math.exp(profile.km_sigma * rng.normal()), low, high))
    plug_in = _uniform(rng, profile.plug_in_soc)
    limit = float(_pick(rng, profile.home_charge_limit))
    return FleetVehicle(
        vehicle_id=vehicle_id(index),
        index=index,
        preset=preset,
        profile=profile_name,
        climate=climate_name,
        daily_km=round(km, 2),
        home_charge_limit=limit,
        plug_in_soc=round(min(plug_in, limit - 0.05), 3),
        dc_fast_share=round(_uniform(rng, profile.dc_fast_share), 3),
        home_ac_kw=float(_pick(rng, profile.home_ac_kw)),
        annual_mean_ambient_c=CLIMATES[climate_name].annual_mean_c,
        route=str(_pick(rng, profile.routes)),
        depart_h=round(_uniform(rng, profile.depart_h), 2),
        drive_probability=round(_uniform(rng, profile.drive_probability), 3),
        dc_target_soc=round(_uniform(rng, (0.75, 0.85)), 3),
        initial_soc=round(_uniform(rng, (0.5, limit)), 3),
    )


def draw_fleet(n: int, seed: int, presets: Sequence[str] | None = None) -> list[FleetVehicle]:
    """``n`` vehicles ``fleet-0001`` … with profiles, climates and presets in their shares
    (presets: equal shares of ``presets``, default sv1ev3 and Model3_2024)."""
    if n < 0:
        raise ValueError("the fleet needs n ≥ 0 vehicles")
    ids = list(dict.fromkeys(presets or DEFAULT_PRESETS))
    if not ids:
        raise ValueError("no presets to draw from")
    rng = np.random.default_rng([seed, 0])
    profiles = rng.permutation(quota(n, {p.name: p.share for p in PROFILES.values()}))
    climates = rng.permutation(quota(n, CLIMATE_SHARES))
    kinds = rng.permutation(quota(n, dict.fromkeys(ids, 1.0)))
    return [
        draw_vehicle(i, seed, str(kinds[i]), str(profiles[i]), str(climates[i])) for i in range(n)
    ]


def profile_shares(fleet: Sequence[FleetVehicle]) -> dict[str, float]:
    """Share of each profile in ``fleet``."""
    n = max(len(fleet), 1)
    return {name: sum(v.profile == name for v in fleet) / n for name in PROFILES}
