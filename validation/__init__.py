"""Validation report: the twin against published references, through its public API.

`python -m validation.run` (or `make validate`) writes docs/validation.md and
docs/img/validation_*.png. Each section module has a `compute(...)` function that talks to the
service only through HTTP (`/step`, `/forecast`, `/vehicles/presets`, and the bridge CLI for
vehicle energy) and returns plain data, and a `render(...)` function that turns that data into
Markdown and figures. The reference side is computed here from the papers' equations
(validation/reference.py), never from twin_service.models.
"""

#: matplotlib requirement of the report (the Makefile's `validate` target installs it).
MATPLOTLIB_REQUIREMENT = "matplotlib>=3.8,<4"
