"""What the OpenAPI document promises is what the server does: bounds are documented and enforced with a
422 naming the field, every error body has the documented shape, and the main routes carry examples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.errors import ErrorOut
from copilot.config import Settings

KEY = "contract-key-0123456789"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def client(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("contract"), api_keys=[SecretStr(KEY)])
    with TestClient(create_app(settings, copilot=hashing_copilot)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def schema(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def assert_names_field(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = ErrorOut.model_validate(response.json())
    assert body.fields is not None and any(f.loc[-1] == field for f in body.fields), body
    assert field in body.detail


def test_a_huge_approval_age_is_a_422_naming_the_field_not_a_500(client: TestClient) -> None:
    response = client.get("/v1/approvals", params={"older_than_s": "4297264061972470.0"}, headers=HEADERS)
    assert_names_field(response, "older_than_s")


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "done"}, "status"),
    ({"risk": "!"}, "risk"),
    ({"staff_id": "x" * 200}, "staff_id"),
    ({"limit": 0}, "limit"),
])
def test_approval_filters_outside_their_documented_values_are_refused(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    assert_names_field(client.get("/v1/approvals", params=params, headers=HEADERS), field)


def test_a_suggestion_without_a_customer_is_refused_by_the_schema(client: TestClient, schema: dict[str, Any]) -> None:
    response = client.post("/v1/suggestions", json={"messages": []}, headers=HEADERS)
    assert_names_field(response, "customer_id")
    body = schema["paths"]["/v1/suggestions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    assert "customer_id" in schema["components"]["schemas"][name]["required"]


def test_a_snooze_beyond_a_year_is_refused(client: TestClient) -> None:
    response = client.post("/v1/revisits/0123abcd/snooze", json={"until": "2999-01-01"}, headers=HEADERS)
    assert response.status_code in (404, 422)  # no such item; the date is checked with the item's day
    assert ErrorOut.model_validate(response.json()).error


def test_every_operation_documents_the_one_error_body(schema: dict[str, Any]) -> None:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorOut"), (method, path, status, ref)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_domain_errors_have_the_documented_shape(client: TestClient) -> None:
    response = client.get("/v1/customers/nobody-42", headers=HEADERS)
    assert response.status_code == 404
    assert ErrorOut.model_validate(response.json()).error == "NotFoundError"


@pytest.mark.parametrize(("path", "method"), [
    ("/v1/suggestions", "post"), ("/v1/analyze", "post"), ("/v1/compliance/check", "post"),
])
def test_main_routes_carry_examples(schema: dict[str, Any], path: str, method: str) -> None:
    content = schema["paths"][path][method]["requestBody"]["content"]["application/json"]
    ref = content["schema"].get("$ref", "")
    component = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    assert content.get("examples") or component.get("examples"), path
