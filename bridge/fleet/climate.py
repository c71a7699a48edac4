"""Named climates: hourly ambient temperature from a few published climate normals.

The model (stated, not fitted to hourly data):

    T(t) = mean − A_year·cos(2π·(d − d_cold)/365) + T_day(h)

``d`` is the day of the year counted from 1 January 00:00 local time (fractional), ``d_cold``
the coldest day (14.5, i.e. mid-January, for the northern hemisphere), ``A_year`` half the
difference between the July and January monthly mean temperatures, and ``mean`` the annual
mean. ``T_day`` is a diurnal cycle of amplitude ``A_day`` = half the mean daily range (mean
daily maximum minus mean daily minimum), with its minimum at 05:00 and its maximum at 15:00
local time: a half cosine rising over the 10 h from 05:00 to 15:00 and a half cosine falling
over the 14 h from 15:00 to 05:00. Each half averages to zero, so the daily mean is that of
the annual sinusoid and the annual mean is ``mean``; the curve and its slope are continuous.

The normals below are from the named 1991–2020 climate normals, rounded to the nearest
0.5 °C (daily ranges to the nearest K). They were written down without network access to
the sources, so take them as representative values good to about ±1 °C, not as station
data; the sinusoid itself puts January and July at ``mean ∓ A_year`` (the normals' own
annual mean can differ from (January + July) / 2 by a few tenths of a degree). Local solar
time, no daylight saving time, a 365-day year.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HOURS_PER_YEAR = 365 * 24
DAY_MIN_H = 5.0  # diurnal minimum, local time
DAY_MAX_H = 15.0  # diurnal maximum, local time
NORTHERN_COLDEST_DAY = 14.5  # 15 January 12:00, in days after 1 January 00:00


@dataclass(frozen=True)
class Climate:
    """Climate normals of one place (°C; ``daily_range_k`` in K)."""

    name: str
    title: str
    station: str
    source: str
    january_mean_c: float
    july_mean_c: float
    annual_mean_c: float
    daily_range_k: float
    coldest_day: float = NORTHERN_COLDEST_DAY  # days after 1 January 00:00

    @property
    def annual_amplitude_k(self) -> float:
        """Half the July–January difference of the monthly means (a southern-hemisphere
        climate keeps it positive and moves ``coldest_day`` to mid-July)."""
        return abs(self.july_mean_c - self.january_mean_c) / 2.0

    @property
    def daily_amplitude_k(self) -> float:
        return self.daily_range_k / 2.0


CLIMATES: dict[str, Climate] = {
    c.name: c
    for c in (
        Climate(
            name="phoenix",
            title="hot desert (Köppen BWh)",
            station="Phoenix Sky Harbor International Airport, Arizona",
            # NOAA NCEI U.S. Climate Normals 1991–2020: January mean ≈ 57 °F, July mean
            # ≈ 95 °F, annual mean ≈ 75 °F; daily range ≈ 21–23 °F all year. Rounded.
            source="NOAA NCEI U.S. Climate Normals 1991–2020 (rounded)",
            january_mean_c=14.0,
            july_mean_c=35.0,
            annual_mean_c=24.0,
            daily_range_k=12.0,
        ),
        Climate(
            name="munich",
            title="temperate, continental influence (Köppen Cfb/Dfb)",
            station="München-Stadt, Germany",
            # DWD (Deutscher Wetterdienst) multi-year means 1991–2020. Rounded.
            source="DWD climate normals 1991–2020 (rounded)",
            january_mean_c=1.0,
            july_mean_c=19.5,
            annual_mean_c=10.0,
            daily_range_k=8.0,
        ),
        Climate(
            name="london",
            title="temperate oceanic (Köppen Cfb)",
            station="London Heathrow, United Kingdom",
            # Met Office UK climate averages 1991–2020. Rounded.
            source="Met Office climate averages 1991–2020 (rounded)",
            january_mean_c=5.5,
            july_mean_c=19.0,
            annual_mean_c=11.5,
            daily_range_k=8.0,
        ),
        Climate(
            name="oslo",
            title="cold, warm summer (Köppen Dfb)",
            station="Oslo-Blindern, Norway",
            # MET Norway standard normals 1991–2020. Rounded.
            source="MET Norway climate normals 1991–2020 (rounded)",
            january_mean_c=-3.0,
            july_mean_c=17.5,
            annual_mean_c=6.5,
            daily_range_k=6.0,
        ),
        Climate(
            name="minneapolis",
            title="cold, hot summer (Köppen Dfa)",
            station="Minneapolis–St Paul International Airport, Minnesota",
            # NOAA NCEI U.S. Climate Normals 1991–2020: January mean ≈ 15 °F, July mean
            # ≈ 74 °F, annual mean ≈ 47 °F; daily range ≈ 17–20 °F. Rounded.
            source="NOAA NCEI U.S. Climate Normals 1991–2020 (rounded)",
            january_mean_c=-9.5,
            july_mean_c=23.5,
            annual_mean_c=8.0,
            daily_range_k=10.0,
        ),
        Climate(
            name="singapore",
            title="tropical rainforest (Köppen Af)",
            station="Singapore Changi",
            # Meteorological Service Singapore, long-term means 1991–2020 (warmest May–June,
            # coolest December–January: the January-minimum sinusoid is close). Rounded.
            source="Meteorological Service Singapore climate normals 1991–2020 (rounded)",
            january_mean_c=26.5,
            july_mean_c=28.0,
            annual_mean_c=27.5,
            daily_range_k=7.0,
        ),
    )
}


def get_climate(name: str) -> Climate:
    try:
        return CLIMATES[name]
    except KeyError:
        raise LookupError(f"unknown climate {name!r}; known: {', '.join(CLIMATES)}") from None


def _diurnal(hour_of_day: np.ndarray) -> np.ndarray:
    """−1 at 05:00, +1 at 15:00: half cosines over 05→15 h (rising) and 15→05 h (falling)."""
    rise_h = DAY_MAX_H - DAY_MIN_H
    since_min = np.mod(hour_of_day - DAY_MIN_H, 24.0)
    phase = np.where(
        since_min < rise_h,
        math.pi * since_min / rise_h,
        math.pi + math.pi * (since_min - rise_h) / (24.0 - rise_h),
    )
    return -np.cos(phase)


def hourly_ambient(climate: str, hours: np.ndarray) -> np.ndarray:
    """Ambient temperature (°C) of the named climate at ``hours`` after 1 January 00:00
    local time (any real number; the year repeats every 8760 h)."""
    c = get_climate(climate)
    h = np.asarray(hours, dtype=float)
    day = np.mod(h, HOURS_PER_YEAR) / 24.0
    annual = c.annual_mean_c - c.annual_amplitude_k * np.cos(
        2.0 * math.pi * (day - c.coldest_day) / 365.0
    )
    return annual + c.daily_amplitude_k * _diurnal(np.mod(h, 24.0))


def ambient_at(climate: str, hour: float) -> float:
    """:func:`hourly_ambient` at one time."""
    return float(hourly_ambient(climate, np.array([hour]))[0])
