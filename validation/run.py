"""Entry point: `python -m validation.run` writes docs/validation.md and docs/img/validation_*.png.

Every number in the report comes from the service's public API (POST /step, POST /forecast,
GET /vehicles/presets, served in-process by FastAPI's TestClient) or from the bridge CLI against
a real service process, except the published reference values in validation/reference.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from validation import (
    calendar_aging,
    cycle_aging,
    demo_timeline,
    estimation,
    ev_pack,
    fleet,
    forecast_consistency,
    invariants,
    limits,
    model_comparison,
    nrel_lfp250,
    vehicle_energy,
)
from validation.common import DOCS_DIR, REPO_ROOT, Section, Twin, open_twin, pyplot

SECTION_KEYS = (
    "calendar",
    "cycle",
    "invariants",
    "energy",
    "demo",
    "forecast",
    "nrel",
    "models",
    "charge",
    "heating",
    "pulses",
    "limits",
    "estimation",
    "fleet",
)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    import numpy

    try:
        import matplotlib

        mpl = f", matplotlib {matplotlib.__version__}"
    except ImportError:
        mpl = ""
    return (
        f"host `{platform.node() or 'unknown'}`, {platform.system()} {platform.release()} "
        f"({platform.machine()}), {_cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}, numpy {numpy.__version__}{mpl}"
    )


def command_line(argv: list[str]) -> str:
    cmd = "python -m validation.run" + ("".join(f" {a}" for a in argv))
    if os.environ.get("MAKELEVEL") and not argv:
        return f"`make validate` (which runs `{cmd}`)"
    return f"`{cmd}`"


def run_sections(keys: tuple[str, ...]) -> list[Section]:
    sections: list[Section] = []

    def timed(key: str, fn: Callable[[], Section]) -> None:
        if key not in keys:
            return
        t0 = time.perf_counter()
        print(f"[validate] {key} ...", flush=True)
        section = fn()
        section.seconds = time.perf_counter() - t0
        print(f"[validate] {key}: {section.seconds:.1f} s", flush=True)
        sections.append(section)

    with open_twin() as twin:
        tw: Twin = twin
        timed("calendar", lambda: calendar_aging.render(calendar_aging.compute(tw)))
        timed("cycle", lambda: cycle_aging.render(cycle_aging.compute(tw)))
        timed("invariants", lambda: invariants.render(invariants.compute(tw)))
        timed("energy", lambda: vehicle_energy.render(vehicle_energy.compute()))
        timed("demo", lambda: demo_timeline.render(demo_timeline.compute(tw)))
        timed("forecast", lambda: forecast_consistency.render(forecast_consistency.compute(tw)))
        timed("nrel", lambda: nrel_lfp250.render(nrel_lfp250.compute(tw)))
        timed("models", lambda: model_comparison.render(model_comparison.compute(tw)))
        timed("charge", lambda: ev_pack.render_charge(ev_pack.compute_charge(tw)))
        timed("heating", lambda: ev_pack.render_heating(ev_pack.compute_heating(tw)))
        timed("pulses", lambda: ev_pack.render_pulses(ev_pack.compute_pulses(tw)))
        timed("limits", lambda: limits.render(limits.compute(tw)))
        timed("estimation", lambda: estimation.render(estimation.compute()))
        timed("fleet", lambda: fleet.render(fleet.compute()))
    return sections


def write_figures(sections: list[Section], img_dir: Path) -> list[Path]:
    plt = pyplot()
    img_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for section in sections:
        for fig_spec in section.figures:
            fig = fig_spec.draw(plt)
            path = img_dir / fig_spec.filename
            fig.savefig(path, metadata={"Software": None})
            plt.close(fig)
            written.append(path)
    return written


def assemble(sections: list[Section], argv: list[str], total_s: float, docs_dir: Path) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = _git("rev-parse", "--short", "HEAD")
    # The report's own outputs do not count as changes to the code it describes.
    dirty = _git(
        "status", "--porcelain", "--", ".", ":!docs/validation.md", ":!docs/img/validation_*"
    )
    source = (
        f", from commit `{commit}`" + (" with uncommitted changes" if dirty else "")
        if commit
        else ""
    )
    lines = [
        "# Validation report",
        "",
        "How far the twin is from references battery engineers already trust. Generated by "
        f"{command_line(argv)} on {now}, {machine_line()}{source}, in {total_s:.0f} s. "
        "Do not edit by hand: `make validate` regenerates this file and "
        "the figures.",
        "",
        "Every figure and table below is computed by the scripts in `validation/` through the "
        "project's public interfaces: `POST /step`, `POST /forecast` and `GET /vehicles/presets` "
        "of the FastAPI app served in-process (`TestClient(create_app(Settings()))`), and the "
        "bridge CLI (`python -m bridge cycle`) against a `python -m twin_service` process; the "
        "peers (PyBaMM's DFN, FASTSim's thermal Model 3) run in their own venv when it exists "
        "(`make bench-peers-venv`), and their sections say so when it does not. Apart "
        "from the test conditions (temperatures, SOCs, depths of cycle, drive profiles), the "
        "only numbers typed in are published references, in `validation/reference.py`: the "
        "constants of the Naumann et al. 2018/2020 and Gasper et al. 2023 (NREL) closed forms "
        "(evaluated in the script, independently of the service's code), NREL FASTSim's "
        "Model 3 UDDS result, and the original README's demo timeline.",
        "",
        "## Summary",
        "",
    ]
    for s in sections:
        lines += [f"- {h}" for h in s.headline]
    lines += [
        "",
        "Sections: " + ", ".join(f"[{s.title}](#{_anchor(s.title)})" for s in sections) + ".",
        "",
    ]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for fig in s.figures:
            rel = os.path.relpath(docs_dir / "img" / fig.filename, docs_dir)
            lines += [f"![{fig.alt}]({rel})", ""]
        # No wall-clock figures in the report: a rerun with nothing changed leaves it unchanged
        # (the run prints each section's time; benchmarks/ measures speed).
        lines += [s.body.strip(), ""]
    lines += [
        "## Reproduce",
        "",
        "```sh",
        "make validate               # installs matplotlib into .venv if needed, then:",
        ".venv/bin/python -m validation.run",
        "```",
        "",
        "`tests/test_validation.py` runs the cheap parts of these scripts in the test suite and "
        "checks that their numbers agree with the suite's own physics and forecast checks.",
        "",
    ]
    return "\n".join(lines)


def _anchor(title: str) -> str:
    keep = [c.lower() if c.isalnum() else ("-" if c in " -" else "") for c in title]
    return "".join(keep)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m validation.run", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated sections ({', '.join(SECTION_KEYS)})")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DOCS_DIR,
        help="where validation.md and img/ go (default docs/)",
    )
    args = parser.parse_args(argv)
    keys = tuple(k.strip() for k in args.only.split(",")) if args.only else SECTION_KEYS
    unknown = set(keys) - set(SECTION_KEYS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    t0 = time.perf_counter()
    sections = run_sections(keys)
    figures = write_figures(sections, args.out_dir / "img")
    total = time.perf_counter() - t0
    report = assemble(sections, argv, total, args.out_dir)
    out = args.out_dir / "validation.md"
    changed = write_report(out, report)
    name = out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out
    print(
        f"[validate] {'wrote' if changed else 'kept (no result changed)'} {name}"
        f" and {len(figures)} figures in {total:.1f} s",
        flush=True,
    )
    return 0


PROVENANCE = "How far the twin is from references"  # the line with date, machine and commit


def _results(report: str) -> list[str]:
    return [line for line in report.splitlines() if not line.startswith(PROVENANCE)]


def write_report(path: Path, report: str) -> bool:
    """Write the report unless only its provenance line (date, machine, commit, run time)
    would change, so a rerun with nothing changed leaves the tree clean. True if written."""
    if path.exists() and _results(path.read_text()) == _results(report):
        return False
    path.write_text(report)
    return True


if __name__ == "__main__":
    sys.exit(main())
