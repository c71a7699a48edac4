"""Schemathesis against /openapi.json, in process: no operation answers with a server error
or with a body its own response schema does not describe, in every phase (the schema's
examples, the coverage of its boundaries, then fuzzing, valid and invalid input)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import msgpack
import pytest
import schemathesis
from schemathesis.core.result import Err, Ok
from schemathesis.python import asgi

from twin_service.app import create_app
from twin_service.settings import Settings

EXAMPLES_PER_OPERATION = 30  # of the fuzzing phase; the other phases take what they need
SEED = 20240611

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "generation": {
            "mode": "all",
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
            "database": "none",
        },
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
        },
    }
)


def _msgpack_safe(value: Any) -> Any:
    """Integers beyond 64 bits (which msgpack cannot carry) as floats."""
    if isinstance(value, dict):
        return {k: _msgpack_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_msgpack_safe(v) for v in value]
    if type(value) is int and not -(2**63) <= value < 2**64:
        return float(value)
    return value


@schemathesis.serializer("application/msgpack")
def _msgpack(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """/step takes msgpack bodies too; the same generated objects go as msgpack."""
    return msgpack.packb(_msgpack_safe(value))


# The schema is read from the app object (no request, so collecting the tests starts nothing);
# requests go to the app in process, and its lifespan runs from the first one until the module
# ends.
APP = create_app(Settings())
schema = schemathesis.openapi.from_dict(APP.openapi(), config=CONFIG)
schema.app = APP


@pytest.fixture(scope="module", autouse=True)
def _stop_the_app() -> Iterator[None]:
    yield
    asgi.shutdown_lifespans()


def test_the_schema_has_every_operation() -> None:
    """/step's request body (added to the document by hand) is seen, and nothing is missing."""
    results = list(schema.get_all_operations())
    assert [r.err() for r in results if isinstance(r, Err)] == []  # no operation it cannot read
    operations = {r.ok().label for r in results if isinstance(r, Ok)}
    assert {"POST /step", "POST /forecast", "POST /forecast/fleet"} <= operations
    assert {"GET /vehicles", "GET /vehicles/{vehicle_id}", "GET /health"} <= operations
    assert schema["/step"]["POST"].body, "POST /step has no request body in the document"


@pytest.mark.slow
@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_no_server_error_and_responses_match_their_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()
