"""The committed OpenAPI document must match the app; regenerate with `make openapi`."""

from __future__ import annotations

import json

from twin_service.openapi_export import DEFAULT_PATH, openapi_document


def test_openapi_document_is_up_to_date() -> None:
    committed = json.loads(DEFAULT_PATH.read_text())
    current = json.loads(json.dumps(openapi_document()))
    assert current == committed, "openapi/openapi.json is stale: run `make openapi`"


def test_operation_ids_are_stable_and_unique() -> None:
    doc = openapi_document()
    ids = [op["operationId"] for path in doc["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert {"step", "list_presets", "health"} <= set(ids)
    step_body = doc["paths"]["/step"]["post"]["requestBody"]["content"]["application/json"]
    assert step_body["schema"]["$ref"] == "#/components/schemas/StepRequest"
    assert "Sample" in doc["components"]["schemas"]
