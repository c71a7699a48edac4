"""Names, units and descriptions of the FMU's variables (no FMI import)."""

MODEL_NAME = "EVBatteryTwin"

# (name, description, unit) of the Real outputs, in Outputs' attribute order.
REAL_OUTPUTS = (
    ("soc", "state of charge (0..1)", "1", "soc"),
    ("voltage_v", "terminal voltage", "V", "voltage_v"),
    ("pack_current_a", "pack current, discharge > 0 (after the pack's limits)", "A", "current_a"),
    ("pack_power_kw", "power at the terminals, discharge > 0", "kW", "power_kw"),
    ("temperature_c", "pack temperature", "degC", "temperature_c"),
    ("soh", "state of health: capacity fraction (0..1)", "1", "soh"),
    ("resistance_factor", "resistance relative to new", "1", "resistance_factor"),
    ("max_discharge_kw", "10 s discharge power limit at the state", "kW", "max_discharge_kw"),
    ("max_regen_kw", "10 s charge (regen) power limit at the state", "kW", "max_regen_kw"),
    ("tms_kw", "thermal management's electrical power", "kW", "tms_kw"),
)
UNITS = {
    "current_a": "A",
    "power_kw": "kW",
    "ambient_c": "degC",
    "initial_soc": "1",
    "initial_soh": "1",
    "initial_resistance_factor": "1",
    "time_multiplier": "1",
    **{name: unit for name, _, unit, _ in REAL_OUTPUTS},
}
