"""The terminal dashboard renders a known telemetry record to the expected text."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
from rich.console import Console

from clients.terminal.render import centered_bar, render_dashboard, sparkline
from clients.terminal.state import DashboardState

NOW = 1_800_000_000.0

# A regenerating sv1ev3 in demo mode (a /step telemetry record of SPEC §3).
TELEMETRY: dict[str, Any] = {
    "timestamp": "2027-01-15T08:00:00.000+00:00",
    "elapsed_seconds": 1500.0,
    "simulated_days": 173.61111111111111,
    "simulated_years": 0.4756468797564688,
    "soc": 70.12067490830742,
    "soh": 83.55847783474452,
    "temperature": 31.24606304624348,
    "voltage": 382.95381814486797,
    "current": -49.16727902959283,
    "power_kw": -18.828797232176672,
    "total_distance_km": 22.5,
    "cycle_count": 0.11359943970570678,
    "energy_throughput_kwh": 18.639006291100515,
    "is_charging": False,
    "is_regen": True,
    "demo_mode": True,
    "time_multiplier": 10000.0,
    "vehicle_model": "sv1ev3",
    "simulation_running": True,
    "vehicle_id": "ev-1",
    "rev": 60,
    "resistance_factor": 1.0,
    "max_discharge_kw": 170.0,
    "max_regen_kw": 120.0,
    "ambient_c": 25.0,
}


def dashboard_state(**changes: Any) -> DashboardState:
    state = DashboardState(twin_url="http://127.0.0.1:8008")
    state.connection = "live"
    state.apply({"type": "snapshot", "rev": 60, "telemetry": {**TELEMETRY, **changes}}, NOW - 2)
    state.choose_vehicle()
    state.load_history(
        [{"rev": i, "soc": 80 - i / 5, "power_kw": 60 * math.sin(i / 5)} for i in range(60)]
    )
    state.set_forecast(
        {"fade_pct_per_year": 2.31, "soh_in_2_years": 0.954, "years_to_80": 8.6}, "ok"
    )
    return state


def render_text(state: DashboardState, width: int = 100) -> str:
    console = Console(width=width, record=True, no_color=True, file=io.StringIO())
    console.print(render_dashboard(state, NOW, width))
    return console.export_text()


def lines_of(text: str) -> list[str]:
    """Panel lines without the border, right-stripped."""
    return [line.strip("│╭╮╰╯").rstrip() for line in text.splitlines()]


def test_known_record_renders_to_the_expected_lines() -> None:
    text = render_text(dashboard_state())
    lines = lines_of(text)
    expected = [
        " ● live   running   demo aging ×10,000   updated 2 s ago   rev 60",
        " SOC          ████████████████████████████░░░░░░░░░░░░      70.1 %",
        " SOH          ███████████████████████████░░░░░░░░░░░░░     83.56 % R ×1.000",
        " Power        ░░░░░░░░░░░░░░███┃░░░░░░░░░░░░░░░░░░░░░░░   -18.8 kW ◀ REGEN",
        " Temperature  ██████████████████████████░░░░░░░░░░░░░░     31.2 °C ambient 25 °C",
        " Voltage 383.0 V       Current -49.2 A            Distance 22.5 km"
        "             Full cycles 0.11",
        " Throughput 18.6 kWh   Simulated age 173.6 days   Power limits 170 / -120 kW"
        "   Model sv1ev3",
        " Forecast     fade 2.31 %/yr   SOH in 2 years 95.4 %   80 % in 8.6 years",
    ]
    for line in expected:
        assert line in lines, f"missing line:\n{line}\nin:\n{text}"
    assert text.splitlines()[0].startswith("╭─ EV battery twin · ev-1 (sv1ev3) ")
    assert text.splitlines()[-1].endswith(" http://127.0.0.1:8008 ─╯")
    trend = next(line for line in lines if line.startswith(" SOC trend"))
    assert trend.endswith("68.2 … 77.4 %")  # the newest 48 of 60 history points and the record


def test_charging_and_discharge_indicators() -> None:
    charging = render_text(
        dashboard_state(power_kw=-50.0, current=-130.0, is_regen=False, is_charging=True)
    )
    assert "⚡ CHARGING" in charging and "REGEN" not in charging
    driving = render_text(dashboard_state(power_kw=85.0, current=220.0, is_regen=False))
    power_line = next(line for line in lines_of(driving) if line.startswith(" Power "))
    assert "▶ discharge" in power_line
    # the bar grows right of the zero mark for discharge
    bar = power_line.split()[1]
    assert bar.index("┃") < bar.index("█")


def test_low_soc_and_unknown_values() -> None:
    text = render_text(dashboard_state(soc=9.5, temperature=None, ambient_c=None))
    lines = lines_of(text)
    assert " SOC          ████░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░       9.5 %" in lines
    temperature = next(line for line in lines if line.startswith(" Temperature"))
    assert temperature.split()[1] == "░" * 40 and temperature.endswith("—")


def test_no_vehicle_yet_and_offline() -> None:
    state = DashboardState(twin_url="http://127.0.0.1:8008")
    state.connection = "reconnecting"
    state.retry_at = NOW + 3
    text = render_text(state)
    assert "○ reconnecting in 3 s" in text
    assert "Waiting for a vehicle…" in text
    assert "none has reported yet" not in text  # not known while disconnected
    state.connection = "offline"
    state.error = "connection refused"
    text = render_text(state)
    expected = (
        "✖ cannot reach the service at http://127.0.0.1:8008 (connection refused) · retrying in 3 s"
    )
    assert expected in text
    state.connection = "live"
    assert "Waiting for a vehicle… none has reported yet" in render_text(state)


def test_footer_names_the_keys_and_the_place_in_the_fleet() -> None:
    state = dashboard_state()
    assert "q quit" not in render_text(state)  # keys off: no footer
    state.keys_enabled = True
    for vehicle_id in ("ev-0", "ev-2"):
        other = {**TELEMETRY, "vehicle_id": vehicle_id}
        state.apply({"type": "state", "rev": 1, "telemetry": other}, NOW)
    last = render_text(state).splitlines()[-1]
    assert last == "↑/p previous   ↓/n next   r refresh   q quit   vehicle 2 of 3"


def test_fleet_table_lists_every_vehicle_and_marks_the_selected_one() -> None:
    state = dashboard_state()
    other = {**TELEMETRY, "vehicle_id": "ev-2", "soc": 12.0, "power_kw": 80.0}
    state.apply({"type": "state", "rev": 3, "telemetry": other}, NOW - 120)
    lines = render_text(state).splitlines()
    row_1 = next(line for line in lines if "ev-1" in line and "▸" in line)
    row_2 = next(line for line in lines if "ev-2" in line)
    assert row_1.split()[2:6] == ["sv1ev3", "70.1", "%", "83.56"]
    assert "12.0 %" in row_2 and "80.0 kW" in row_2 and "2 min ago" in row_2


@pytest.mark.parametrize("width", [60, 80, 120])
def test_fits_the_terminal_width(width: int) -> None:
    state = dashboard_state()
    state.apply({"type": "state", "rev": 1, "telemetry": {**TELEMETRY, "vehicle_id": "b"}}, NOW)
    text = render_text(state, width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "70.1 %" in text and "-18.8 kW" in text


def test_colour_is_optional() -> None:
    def rendered(**console_options: Any) -> str:
        out = io.StringIO()
        console = Console(width=100, force_terminal=True, file=out, **console_options)
        console.print(render_dashboard(dashboard_state(soc=10.0), NOW, 100))
        return out.getvalue()

    coloured = rendered(color_system="truecolor")
    plain = rendered(color_system="truecolor", no_color=True)
    assert "\x1b[31" in coloured or "\x1b[1;31" in coloured  # low SOC in red
    assert "\x1b[3" not in plain.replace("\x1b[3m", "")  # no foreground colours at all
    assert "REGEN" in plain  # what colour says is also written


def test_bars_and_sparkline_shapes() -> None:
    assert centered_bar(0.0, -50, 50, "green", 10).plain == "░░░░░┃░░░░░"
    assert centered_bar(50.0, -50, 50, "green", 10).plain == "░░░░░┃█████"
    assert centered_bar(-25.0, -50, 50, "green", 10).plain == "░░░██┃░░░░░"
    assert centered_bar(999.0, -50, 50, "green", 10).plain == "░░░░░┃█████"
    assert centered_bar(None, 0, 50, "green", 4).plain == "┃░░░░"
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3, 3, 3]) == "▄▄▄"
    assert sparkline([]) == ""


# What the service adds to the telemetry when its state estimator ran (soc_std and the SOH's
# in %-points, like soc and soh).
ESTIMATE: dict[str, Any] = {
    "soc_std": 1.3,
    "measured_voltage": 383.2,
    "voltage_residual": 0.25,
    "soh_estimated": 83.4,
    "soh_estimated_std": 0.4,
    "resistance_factor_estimated": 1.05,
    "measurements_rejected": 0,
}


def test_an_estimate_shows_soc_sigma_and_the_estimated_soh_beside_the_model() -> None:
    lines = lines_of(render_text(dashboard_state(**ESTIMATE)))
    expected = [
        " SOC          ████████████████████████████░░░░░░░░░░░░    70.1 ± 1.3 %",
        " SOH model    ███████████████████████████░░░░░░░░░░░░░         83.56 % R ×1.000",
        " SOH estimate ███████████████████████████░░░░░░░░░░░░░  83.40 ± 0.40 % R ×1.050",
        " Power        ░░░░░░░░░░░░░░███┃░░░░░░░░░░░░░░░░░░░░░░░       -18.8 kW ◀ REGEN",
    ]
    for line in expected:
        assert line in lines, f"missing line:\n{line}\nin:\n" + "\n".join(lines)
    # the SOH estimate without its σ, the SOC's σ alone
    lines = lines_of(render_text(dashboard_state(soh_estimated=83.4)))
    assert " SOH estimate ███████████████████████████░░░░░░░░░░░░░         83.40 %" in lines
    assert any(line.startswith(" SOC ") and line.endswith(" 70.1 %") for line in lines)
    text = render_text(dashboard_state(soc_std=1.3))
    assert "70.1 ± 1.3 %" in text and "SOH estimate" not in text and "SOH model" not in text


def test_null_estimate_fields_render_as_before() -> None:
    """No estimator: the fields are null, and the screen is the one without them."""
    nulls = dict.fromkeys(ESTIMATE)
    assert render_text(dashboard_state(**nulls)) == render_text(dashboard_state())
    assert "±" not in render_text(dashboard_state(**nulls))


@pytest.mark.parametrize("width", [60, 80, 120])
def test_an_estimate_fits_the_terminal_width(width: int) -> None:
    text = render_text(dashboard_state(**ESTIMATE), width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "70.1 ± 1.3 %" in text and "83.40 ± 0.40 %" in text
