"""Rendering of the terminal dashboard: DashboardState -> Rich renderables. Pure functions.

Everything that colour says is also said by shape or text (bar lengths, the zero mark of the
power bar, REGEN / CHARGING labels), so the dashboard stays readable with NO_COLOR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from clients.terminal.keys import FOOTER
from clients.terminal.state import DashboardState

BAR_WIDTH = 40
SPARK_WIDTH = 48
SPARK_CHARS = "▁▂▃▄▅▆▇█"
FILLED = "█"
EMPTY = "░"
ZERO_MARK = "┃"
# Gauge ranges, the same as the browser dashboard's.
SOH_MIN_PCT = 50.0
TEMPERATURE_RANGE_C = (-20.0, 60.0)
POWER_FALLBACK_KW = (60.0, 150.0)  # (regen, discharge) when the telemetry carries no limits
FORECAST_YEARS = 10
VALUE_WIDTH = 10  # the gauges' value column
ESTIMATE_EXTRA = 4  # more of it for "± σ" (taken from the bars)

STYLES = {
    "good": "green",
    "warn": "yellow",
    "bad": "bold red",
    "cold": "cyan",
    "discharge": "dark_orange",
    "regen": "green",
    "charging": "bright_blue",
    "muted": "dim",
    "soc": "bright_blue",
    "soh": "magenta",
}


# ---------------------------------------------------------------------- formatting


def fmt(value: Any, digits: int, unit: str = "") -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        return "—"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}" if unit else text


def fmt_std(value: Any, std: Any, digits: int, unit: str) -> str:
    """``62.1 ± 1.3 %``: an estimate with its standard deviation; the value alone without it."""
    if _number(value) is None:
        return "—"
    if _number(std) is None:
        return fmt(value, digits, unit)
    return f"{fmt(value, digits)} ± {fmt(std, digits)} {unit}"


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


# ---------------------------------------------------------------------- levels


def soc_level(soc: float) -> str:
    return "bad" if soc < 15 else "warn" if soc < 30 else "good"


def soh_level(soh: float) -> str:
    return "bad" if soh < 80 else "warn" if soh < 90 else "good"


def temperature_level(celsius: float) -> str:
    if celsius >= 50 or celsius < -10:
        return "bad"
    if celsius < 5:
        return "cold"
    return "warn" if celsius >= 40 else "good"


def power_mode(telemetry: Mapping[str, Any]) -> str:
    power = _number(telemetry.get("power_kw"))
    if telemetry.get("is_charging"):
        return "charging"
    if telemetry.get("is_regen"):
        return "regen"
    return "discharge" if power is not None and power > 0 else "idle"


# ---------------------------------------------------------------------- bars


def bar(value: float | None, low: float, high: float, style: str, width: int = BAR_WIDTH) -> Text:
    """A horizontal bar from ``low`` to ``value``."""
    text = Text()
    if value is None:
        return text.append(EMPTY * width, style=STYLES["muted"])
    filled = _cells((value - low) / (high - low), width)
    text.append(FILLED * filled, style=style)
    text.append(EMPTY * (width - filled), style=STYLES["muted"])
    return text


def centered_bar(
    value: float | None, low: float, high: float, style: str, width: int = BAR_WIDTH
) -> Text:
    """A bar that grows left (negative) or right (positive) from a zero mark."""
    zero = _cells(-low / (high - low), width)
    cells = [EMPTY] * width
    styles = [STYLES["muted"]] * width
    if value is not None:
        position = _cells((value - low) / (high - low), width)
        for index in range(min(zero, position), max(zero, position)):
            cells[index] = FILLED
            styles[index] = style
    text = Text()
    run_start = 0
    for index in range(1, width + 1):
        # Append runs of equal style at once; the zero mark goes before cell `zero`.
        if index == width or styles[index] != styles[run_start] or index == zero:
            if run_start == zero:
                text.append(ZERO_MARK, style="bold")
            text.append("".join(cells[run_start:index]), style=styles[run_start])
            run_start = index
    if zero >= width:
        text.append(ZERO_MARK, style="bold")
    return text


def _cells(fraction: float, width: int) -> int:
    """How many of ``width`` cells a fraction fills (half rounds up, clamped to 0..width)."""
    return int(min(1.0, max(0.0, fraction)) * width + 0.5)


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    points = list(values)[-width:]
    if not points:
        return ""
    low, high = min(points), max(points)
    span = high - low
    top = len(SPARK_CHARS) - 1
    if span <= 1e-12:
        return SPARK_CHARS[top // 2] * len(points)
    return "".join(SPARK_CHARS[round((p - low) / span * top)] for p in points)


# ---------------------------------------------------------------------- sections


def status_line(state: DashboardState, now: float) -> Text:
    text = Text()
    connection = state.connection
    if connection == "live":
        text.append("● live", style="bold green")
    elif connection == "reconnecting":
        wait = max(0, round((state.retry_at or now) - now))
        text.append(f"○ reconnecting in {wait} s" if wait else "○ reconnecting", style="yellow")
    elif connection == "unauthorized":
        text.append("✖ read key needed (--read-key or TWIN_READ_KEY)", style="bold red")
    elif connection == "unavailable":
        text.append("✖ service has no live stream", style="bold red")
    elif connection == "offline":
        text.append(f"✖ cannot reach the service at {state.twin_url}", style="bold red")
        if state.error:
            text.append(f" ({state.error})", style="red")
        if state.retry_at is not None:
            wait = max(0, round(state.retry_at - now))
            text.append(f" · retrying in {wait} s" if wait else " · retrying", style="yellow")
    else:
        text.append("○ connecting", style="yellow")
    telemetry = state.telemetry
    if state.selected and telemetry:
        running = state.running_label(state.selected, now)
        text.append("   ")
        text.append(running, style={"running": "green", "idle": "yellow"}.get(running, "red"))
        multiplier = _number(telemetry.get("time_multiplier"))
        if telemetry.get("demo_mode"):
            text.append("   demo ", style="magenta")
            text.append(f"aging ×{fmt(multiplier, 0)}", style="magenta")
        else:
            text.append("   demo off", style=STYLES["muted"])
        text.append(f"   updated {fmt_age(state.age_s(state.selected, now))}")
        rev = telemetry.get("rev")
        if isinstance(rev, int):
            text.append(f"   rev {rev}", style=STYLES["muted"])
    return text


def estimated(telemetry: Mapping[str, Any]) -> bool:
    """Whether the telemetry carries a state estimate (its fields are null without one)."""
    return any(_number(telemetry.get(k)) is not None for k in ("soc_std", "soh_estimated"))


def value_width(telemetry: Mapping[str, Any]) -> int:
    """Width of the gauges' value column: wider for ``62.1 ± 1.3 %`` when estimated."""
    return VALUE_WIDTH + (ESTIMATE_EXTRA if estimated(telemetry) else 0)


def gauges(telemetry: Mapping[str, Any], bar_width: int = BAR_WIDTH) -> Table:
    """SOC, SOH, power and temperature as bars. With a state estimate the SOC carries its σ
    and the estimated SOH (and resistance factor) gets a row below the model's."""
    table = Table.grid(padding=(0, 1))
    table.add_column("label", width=12, no_wrap=True)
    table.add_column("bar", no_wrap=True)
    table.add_column("value", justify="right", width=value_width(telemetry), no_wrap=True)
    table.add_column("note", no_wrap=True)

    soc = _number(telemetry.get("soc"))
    if soc is None:
        style = STYLES["muted"]
    else:  # a healthy charge in the SOC colour, low charge in warning colours
        style = STYLES["soc"] if soc_level(soc) == "good" else STYLES[soc_level(soc)]
    soc_text = fmt_std(soc, telemetry.get("soc_std"), 1, "%")
    table.add_row("SOC", bar(soc, 0, 100, style, bar_width), Text(soc_text, style="bold"), "")

    soh = _number(telemetry.get("soh"))
    style = STYLES[soh_level(soh)] if soh is not None else STYLES["muted"]
    resistance = _number(telemetry.get("resistance_factor"))
    soh_estimated = _number(telemetry.get("soh_estimated"))
    table.add_row(
        "SOH" if soh_estimated is None else "SOH model",
        bar(soh, SOH_MIN_PCT, 100, style, bar_width),
        Text(fmt(soh, 2, "%"), style="bold"),
        Text(f"R ×{fmt(resistance, 3)}" if resistance is not None else "", style="dim"),
    )
    if soh_estimated is not None:
        resistance_estimated = _number(telemetry.get("resistance_factor_estimated"))
        table.add_row(
            "SOH estimate",
            bar(soh_estimated, SOH_MIN_PCT, 100, STYLES[soh_level(soh_estimated)], bar_width),
            Text(fmt_std(soh_estimated, telemetry.get("soh_estimated_std"), 2, "%"), style="bold"),
            Text(
                f"R ×{fmt(resistance_estimated, 3)}" if resistance_estimated is not None else "",
                style="dim",
            ),
        )

    power = _number(telemetry.get("power_kw"))
    regen_kw = abs(_number(telemetry.get("max_regen_kw")) or POWER_FALLBACK_KW[0])
    discharge_kw = _number(telemetry.get("max_discharge_kw")) or POWER_FALLBACK_KW[1]
    mode = power_mode(telemetry)
    mode_style = STYLES.get(mode, STYLES["good"])
    table.add_row(
        "Power",
        centered_bar(power, -regen_kw, discharge_kw, mode_style, bar_width),
        Text(fmt(power, 1, "kW"), style="bold"),
        power_flags(telemetry),
    )

    temperature = _number(telemetry.get("temperature"))
    style = STYLES[temperature_level(temperature)] if temperature is not None else STYLES["muted"]
    ambient = _number(telemetry.get("ambient_c"))
    table.add_row(
        "Temperature",
        bar(temperature, *TEMPERATURE_RANGE_C, style, bar_width),
        Text(fmt(temperature, 1, "°C"), style="bold"),
        Text(f"ambient {fmt(ambient, 0, '°C')}" if ambient is not None else "", style="dim"),
    )
    return table


def power_flags(telemetry: Mapping[str, Any]) -> Text:
    text = Text()
    if telemetry.get("is_regen"):
        text.append("◀ REGEN", style="bold green")
    if telemetry.get("is_charging"):
        text.append(" " if text else "")
        text.append("⚡ CHARGING", style="bold bright_blue")
    if not text and _number(telemetry.get("power_kw")) is not None:
        text.append("▶ discharge" if power_mode(telemetry) == "discharge" else "idle", style="dim")
    return text


def details(telemetry: Mapping[str, Any], columns: int = 4) -> Table:
    table = Table.grid(padding=(0, 3))
    for _ in range(columns):
        table.add_column(no_wrap=True)
    simulated_years = _number(telemetry.get("simulated_years"))
    if simulated_years is not None and simulated_years >= 1:
        age = fmt(simulated_years, 2, "years")
    else:
        age = fmt(_number(telemetry.get("simulated_days")), 1, "days")
    regen_kw = _number(telemetry.get("max_regen_kw"))
    limits = (
        f"{fmt(_number(telemetry.get('max_discharge_kw')), 0)} / -{fmt(abs(regen_kw), 0)} kW"
        if regen_kw is not None
        else "—"
    )
    cells = [
        ("Voltage", fmt(_number(telemetry.get("voltage")), 1, "V")),
        ("Current", fmt(_number(telemetry.get("current")), 1, "A")),
        ("Distance", fmt(_number(telemetry.get("total_distance_km")), 1, "km")),
        ("Full cycles", fmt(_number(telemetry.get("cycle_count")), 2)),
        ("Throughput", fmt(_number(telemetry.get("energy_throughput_kwh")), 1, "kWh")),
        ("Simulated age", age),
        ("Power limits", limits),
        ("Model", str(telemetry.get("vehicle_model") or "—")),
    ]
    for row in range(0, len(cells), columns):
        table.add_row(*(_labelled(label, value) for label, value in cells[row : row + columns]))
    return table


def _labelled(label: str, value: str) -> Text:
    text = Text()
    text.append(f"{label} ", style="dim")
    text.append(value, style="bold")
    return text


def trends(state: DashboardState, spark_width: int = SPARK_WIDTH) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(width=12, no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    for label, points, unit, style in (
        ("SOC trend", state.soc_points, "%", STYLES["soc"]),
        ("Power trend", state.power_points, "kW", STYLES["discharge"]),
    ):
        values = list(points)[-spark_width:]
        line = sparkline(values, spark_width)
        span = f"{fmt(min(values), 1)} … {fmt(max(values), 1)} {unit}" if values else "—"
        table.add_row(label, Text(line, style=style), Text(span, style="dim"))
    return table


def forecast_line(state: DashboardState) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(width=12, no_wrap=True)
    table.add_column()
    table.add_row("Forecast", forecast_text(state))
    return table


def forecast_text(state: DashboardState) -> Text:
    text = Text()
    forecast = state.forecast
    if not forecast:
        text.append(f"fade —   SOH in 2 years —   80 % in —   ({state.forecast_note})", style="dim")
        return text
    fade = _number(forecast.get("fade_pct_per_year"))
    soh_2y = _number(forecast.get("soh_in_2_years"))
    if soh_2y is not None and soh_2y <= 1.5:  # a fraction rather than %
        soh_2y *= 100
    years_to_80 = _number(forecast.get("years_to_80"))
    text.append("fade ")
    text.append(fmt(fade, 2, "%/yr"), style="bold")
    text.append("   SOH in 2 years ")
    text.append(fmt(soh_2y, 1, "%"), style="bold")
    text.append("   80 % in ")
    reach = fmt(years_to_80, 1, "years") if years_to_80 is not None else f"> {FORECAST_YEARS} years"
    text.append(reach, style="bold")
    return text


def fleet_table(
    state: DashboardState, now: float, *, with_status: bool = True, with_model: bool = True
) -> Table:
    table = Table(box=box.SIMPLE_HEAD, expand=False, pad_edge=False)
    table.add_column("vehicle", no_wrap=True)
    if with_model:
        table.add_column("model", no_wrap=True)
    table.add_column("SOC", justify="right", no_wrap=True)
    table.add_column("SOH", justify="right", no_wrap=True)
    table.add_column("power", justify="right", no_wrap=True)
    table.add_column("temp", justify="right", no_wrap=True)
    if with_status:
        table.add_column("status", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    for vehicle_id in sorted(state.vehicles):
        telemetry = state.vehicles[vehicle_id]
        soc = _number(telemetry.get("soc"))
        soh = _number(telemetry.get("soh"))
        temperature = _number(telemetry.get("temperature"))
        mode = power_mode(telemetry)
        cells: list[Any] = [
            Text(f"▸ {vehicle_id}", style="bold")
            if vehicle_id == state.selected
            else f"  {vehicle_id}",
            Text(fmt(soc, 1, "%"), style=STYLES[soc_level(soc)] if soc is not None else ""),
            Text(fmt(soh, 2, "%"), style=STYLES[soh_level(soh)] if soh is not None else ""),
            Text(
                fmt(_number(telemetry.get("power_kw")), 1, "kW"),
                style=STYLES.get(mode, ""),
            ),
            Text(
                fmt(temperature, 1, "°C"),
                style=STYLES[temperature_level(temperature)] if temperature is not None else "",
            ),
        ]
        if with_model:
            cells.insert(1, str(telemetry.get("vehicle_model") or "—"))
        if with_status:
            cells.append(state.running_label(vehicle_id, now))
        cells.append(fmt_age(state.age_s(vehicle_id, now)))
        table.add_row(*cells)
    return table


# ---------------------------------------------------------------------- the dashboard


def render_dashboard(state: DashboardState, now: float, width: int = 100) -> RenderableType:
    """The whole screen for ``state`` at wall-clock time ``now``, laid out for ``width``
    columns (bars, sparklines and tables shrink to fit 60 to 100+ columns)."""
    inner = width - 4  # the panel's border and padding
    telemetry = state.telemetry
    if state.selected and telemetry:
        model = telemetry.get("vehicle_model")
        title = f"EV battery twin · {state.selected}" + (f" ({model})" if model else "")
        body: list[RenderableType] = [
            status_line(state, now),
            Text(),
            gauges(
                telemetry, bar_width=max(10, min(BAR_WIDTH, inner - 30 - value_width(telemetry)))
            ),
            Text(),
            details(telemetry, columns=4 if inner >= 96 else 2),
            Text(),
            trends(state, spark_width=max(10, min(SPARK_WIDTH, inner - 34))),
            forecast_line(state),
        ]
    else:
        title = "EV battery twin"
        if state.selected:
            waiting = f"Waiting for {state.selected!r} to report…"
        elif state.connection == "live":
            waiting = (
                "Waiting for a vehicle… none has reported yet. "
                "Start one with: twin-bridge cycle --vehicle-id my-ev"
            )
        else:
            waiting = "Waiting for a vehicle…"
        body = [status_line(state, now), Text(), Text(waiting, style="dim")]
    if state.error and state.connection not in ("live", "offline"):  # offline: said above
        body.append(Text(state.error, style="dim red"))
    panel = Panel(
        Group(*body),
        title=Text(title, style="bold"),
        title_align="left",
        subtitle=Text(state.twin_url, style="dim"),
        subtitle_align="right",
        box=box.ROUNDED,
        padding=(0, 1),
    )
    parts: list[RenderableType] = [panel]
    if len(state.vehicles) > 1 or (state.vehicles and state.selected not in state.vehicles):
        parts.append(fleet_table(state, now, with_status=width >= 90, with_model=width >= 72))
    if state.keys_enabled:
        parts.append(footer(state))
    return Group(*parts)


def footer(state: DashboardState) -> Text:
    """The keys, and where the selected vehicle is in the order they step through."""
    text = Text(FOOTER, style="dim")
    position = state.position()
    if position is not None:
        text.append(f"   vehicle {position[0]} of {position[1]}", style="dim")
    return text
