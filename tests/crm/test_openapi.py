"""The OpenAPI document kept in the repository is exactly what the app generates."""

import json
from pathlib import Path

from tresor_crm.server import openapi_json

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "crm.json"


def test_committed_openapi_document_is_current() -> None:
    assert COMMITTED.exists(), "docs/openapi/crm.json is missing: run make openapi"
    assert COMMITTED.read_text(encoding="utf-8") == openapi_json(), (
        "docs/openapi/crm.json is stale: run make openapi"
    )


def test_openapi_document_describes_the_json_api() -> None:
    document = json.loads(openapi_json())
    assert document["openapi"].startswith("3.")
    assert "/s/{link}/api/v1/contacts" in document["paths"]
    assert "/s/{link}/api/v1/search" in document["paths"]
