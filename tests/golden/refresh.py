"""Refresh the golden responses after a deliberate, documented change of the model:
`python -m tests.golden.refresh "<reason>"`; `--current "<reason>"` rewrites the fixture that
pins today's pack physics instead (tests/fixtures/golden_current.json.gz: the stored requests
whose vehicle is a preset, replayed as they are).

The stored requests stay as `generate.py` wrote them (vehicles in the shape before issue 12);
each is replayed as tests/test_golden.py replays it (`legacy_request`) and its response is
replaced. The header records the reason, the commit and the largest relative change of any
number, so the size of the change is on record next to the numbers it moved.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from typing import Any

from tests.golden.generate import (
    GOLDEN_PATH,
    MAX_FIXTURE_BYTES,
    STATE_PATHS,
    git,
    gzip_bytes,
    roundtrip,
    run,
)
from tests.test_golden import comparable_state, flatten, legacy_request


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _response(request: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Today's response in the stored response's shape: the state in the fixture's (v1)
    names with the keys it had, telemetry and trace rows with the keys they had."""
    new = run(legacy_request(request))
    state = comparable_state(new["state"])
    keys = flatten(old["state"])
    telemetry = {k: new["telemetry"][k] for k in old["telemetry"]}
    trace = [
        {k: row[k] for k in old_row}
        for row, old_row in zip(new["trace"] or [], old["trace"], strict=True)
    ]
    return roundtrip(
        {"state": _nest({k: state[k] for k in keys}), "telemetry": telemetry, "trace": trace}
    )


def _largest_change(old: dict[str, Any], new: dict[str, Any]) -> tuple[float, str]:
    """The largest change of a number the old response has, relative to max(|value|, 1),
    and where."""
    worst, where = 0.0, ""
    a = flatten({"state": old["state"], "telemetry": old["telemetry"]})
    b = flatten({"state": new["state"], "telemetry": new["telemetry"]})
    for i, (ra, rb) in enumerate(zip(old["trace"], new["trace"], strict=True)):
        a.update({f"trace[{i}].{k}": v for k, v in ra.items()})
        b.update({f"trace[{i}].{k}": v for k, v in rb.items()})
    for key, va in a.items():
        vb = b.get(key)
        if type(va) in (int, float) and type(vb) in (int, float) and va != vb:
            rel = abs(vb - va) / max(abs(va), 1.0)
            if rel > worst and math.isfinite(rel):
                worst, where = rel, key
    return worst, where


CURRENT_PATH = GOLDEN_PATH.with_name("golden_current.json.gz")


def write_current(reason: str) -> None:
    """Today's responses to the stored requests that name a preset (or none), unchanged."""
    with gzip.open(GOLDEN_PATH, "rt", encoding="utf-8") as f:
        doc = json.load(f)
    cases = []
    for case in doc["cases"]:
        vehicle = case["request"].get("vehicle")
        if vehicle is not None and not isinstance(vehicle, str):
            continue
        cases.append({"name": case["name"], "request": case["request"],
                      "response": run(case["request"])})  # fmt: skip
    out = {"commit": git("rev-parse", "HEAD"), "reason": reason, "cases": cases,
           "compare": {"rel": 1e-9, "abs": 1e-12}}  # fmt: skip
    data = gzip_bytes(json.dumps(out, sort_keys=True, separators=(",", ":")).encode())
    if len(data) > MAX_FIXTURE_BYTES:
        raise SystemExit(f"{CURRENT_PATH.name} would be {len(data)} bytes")
    CURRENT_PATH.write_bytes(data)
    print(f"{CURRENT_PATH.name}: {len(cases)} cases, {len(data)} bytes")


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    if sys.argv[1] == "--current":
        write_current(sys.argv[2] if len(sys.argv) > 2 else "today's pack physics")
        return
    reason = sys.argv[1]
    with gzip.open(GOLDEN_PATH, "rt", encoding="utf-8") as f:
        doc = json.load(f)
    worst = (0.0, "", "")
    for case in doc["cases"]:
        new = _response(case["request"], case["response"])
        change, where = _largest_change(case["response"], new)
        if change > worst[0]:
            worst = (change, case["name"], where)
        case["response"] = new
    commit = git("rev-parse", "HEAD")
    doc.setdefault("refreshed", []).append(
        {"reason": reason, "after_commit": commit, "largest_relative_change": worst[0],
         "at": f"{worst[1]}: {worst[2]}"}
    )  # fmt: skip
    data = gzip_bytes(
        json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    )
    if len(data) > MAX_FIXTURE_BYTES:
        raise SystemExit(f"{GOLDEN_PATH.name} would be {len(data)} bytes")
    GOLDEN_PATH.write_bytes(data)
    print(f"{GOLDEN_PATH.name}: {len(doc['cases'])} cases; largest change {worst[0]:.3g} at "
          f"{worst[1]}: {worst[2]}")  # fmt: skip
    for path in STATE_PATHS.values():
        case = json.loads(path.read_text())
        new = _response(case["request"], case["response"])
        change, where = _largest_change(case["response"], new)
        case["response"] = new
        case.setdefault("refreshed", []).append({"reason": reason, "after_commit": commit})
        path.write_text(json.dumps(case, sort_keys=True, indent=2, allow_nan=False) + "\n")
        print(f"{path.name}: largest change {change:.3g} at {where}")


if __name__ == "__main__":
    main()
