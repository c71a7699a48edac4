"""Build dist/EVBatteryTwin.fmu: `python -m twin_service.fmu [--out PATH] [--no-validate]`.

pythonfmu packs a one-line entry module (it imports the slave from the installed package),
its own runtime and its native wrappers (linux64, win64). The model description then gets
units, a default experiment and the FMU's capabilities (variable step size, state get/set and
serialization), and FMPy validates it when installed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

from twin_service.fmu.variables import MODEL_NAME, UNITS

logger = logging.getLogger(__name__)

DEFAULT_OUT = Path("dist") / f"{MODEL_NAME}.fmu"
ENTRY_MODULE = "ev_battery_twin_fmu"
ENTRY = f'''"""Entry of the {MODEL_NAME} FMU: the slave lives in the installed ev-battery-twin."""

import sys

try:
    from twin_service.fmu.slave import {MODEL_NAME}, hold_entry_globals
except ImportError as exc:
    raise ImportError(
        f"{MODEL_NAME}.fmu runs the model of the ev-battery-twin package, which this Python "
        f"({{sys.executable or 'embedded'}}) cannot import ({{exc}}): pip install "
        "'ev-battery-twin[fmu]' there, or run the master with the environment that has it"
    ) from exc

hold_entry_globals(globals())
'''
OPTIONS = {
    "canHandleVariableCommunicationStepSize": True,
    "canGetAndSetFMUstate": True,
    "canSerializeFMUstate": True,
    "needsExecutionTool": True,  # a Python with the package installed
}
DEFAULT_EXPERIMENT = {"startTime": "0.0", "stopTime": "1800.0", "stepSize": "1.0"}
# FMI 2.0 unit definitions: exponents of the SI base units (and factor/offset to them).
UNIT_DEFINITIONS = {
    "1": {},
    "A": {"A": "1"},
    "V": {"kg": "1", "m": "2", "s": "-3", "A": "-1"},
    "kW": {"kg": "1", "m": "2", "s": "-3", "factor": "1000"},
    "degC": {"K": "1", "offset": "273.15"},
}


def build(out: Path = DEFAULT_OUT) -> Path:
    from pythonfmu.builder import FmuBuilder

    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="twin_fmu_") as tmp:
        script = Path(tmp) / f"{ENTRY_MODULE}.py"
        script.write_text(ENTRY)
        built = FmuBuilder.build_FMU(script, dest=out, **OPTIONS)
        sys.modules.pop(ENTRY_MODULE, None)
    _finish_description(Path(built))
    return Path(built)


def _finish_description(fmu: Path) -> None:
    """Units, the default experiment and the initial unknowns in modelDescription.xml
    (pythonfmu writes none of them)."""
    with zipfile.ZipFile(fmu) as z:
        entries = {info.filename: z.read(info) for info in z.infolist()}
    root = ET.fromstring(entries["modelDescription.xml"])
    unit_defs = ET.Element("UnitDefinitions")
    for name, base in UNIT_DEFINITIONS.items():
        unit = ET.SubElement(unit_defs, "Unit", name=name)
        if base:
            ET.SubElement(unit, "BaseUnit", base)
    # FMI 2.0 order: ..., UnitDefinitions, TypeDefinitions, LogCategories, DefaultExperiment, ...
    position = next(i for i, child in enumerate(root) if child.tag != "CoSimulation")
    root.insert(position, unit_defs)
    for old in root.findall("DefaultExperiment"):
        root.remove(old)
    variables = root.find("ModelVariables")
    assert variables is not None
    root.insert(list(root).index(variables), ET.Element("DefaultExperiment", DEFAULT_EXPERIMENT))
    for var in variables:
        real = var.find("Real")
        unit_name = UNITS.get(var.get("name", ""))
        if real is not None and unit_name is not None:
            real.set("unit", unit_name)
    # Outputs are calculated at initialization (the initial pack), so they are initial unknowns.
    structure = root.find("ModelStructure")
    assert structure is not None
    for old in structure.findall("InitialUnknowns"):
        structure.remove(old)
    initial = ET.SubElement(structure, "InitialUnknowns")
    for index, var in enumerate(variables, start=1):
        if var.get("causality") == "output":
            ET.SubElement(initial, "Unknown", index=str(index))
    ET.indent(root)
    entries["modelDescription.xml"] = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    with zipfile.ZipFile(fmu, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)


def validate(fmu: Path) -> list[str]:
    """FMPy's checks of the model description (an empty list: none failed)."""
    from fmpy.validation import validate_fmu

    return list(validate_fmu(str(fmu)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twin_service.fmu", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--no-validate", action="store_true", help="skip FMPy's validation")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        fmu = build(args.out)
    except ModuleNotFoundError as exc:
        logger.error("%s: install the extra: pip install 'ev-battery-twin[fmu]'", exc)
        return 2
    logger.info("built %s (%d kB)", fmu, fmu.stat().st_size // 1024)
    if not args.no_validate:
        try:
            problems = validate(fmu)
        except ModuleNotFoundError:
            logger.warning("FMPy is not installed: not validated (pip install fmpy)")
            return 0
        for problem in problems:
            logger.error("fmpy.validate: %s", problem)
        if problems:
            return 1
        logger.info("fmpy.validate: no problems")
    return 0
