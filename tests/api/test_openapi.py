"""The generated OpenAPI document is valid, complete and matches the contract's paths."""

from __future__ import annotations

from http import HTTPStatus
from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

CONTRACT_OPERATIONS = {
    ("/api/v1/api_keys", "post"),
    ("/api/v1/api_keys", "get"),
    ("/api/v1/api_keys/{key_id}", "get"),
    ("/api/v1/api_keys/{key_id}", "put"),
    ("/api/v1/api_keys/{key_id}", "delete"),
    ("/api/v1/api_keys/verify", "post"),
    ("/api/v1/api_keys/leaks", "post"),
    ("/api/v1/apis", "get"),
    ("/api/v1/apis", "post"),
    ("/api/v1/apis/{api_id}", "get"),
    ("/api/v1/apis/{api_id}", "delete"),
    ("/api/v1/apis/{api_id}/scopes", "get"),
    ("/api/v1/apis/{api_id}/scopes", "post"),
    ("/api/v1/apis/{api_id}/scopes/{scope_id}", "get"),
    ("/api/v1/apis/{api_id}/scopes/{scope_id}", "patch"),
    ("/api/v1/apis/{api_id}/scopes/{scope_id}", "delete"),
    ("/api/v1/organization", "post"),
    ("/api/v1/organization", "get"),
    ("/api/v1/organizations", "get"),
    ("/api/v1/user", "post"),
    ("/api/v1/users", "get"),
    ("/api/v1/organizations/{org_code}/users", "post"),
    ("/api/v1/organizations/{org_code}/users", "get"),
    ("/api/v1/organizations/{org_code}/api_key_policy", "get"),
    ("/api/v1/organizations/{org_code}/api_key_policy", "put"),
    ("/api/v1/roles", "get"),
    ("/api/v1/roles", "post"),
    ("/api/v1/system_permissions", "get"),
    ("/api/v1/roles/{role_id}/system_permissions", "patch"),
    ("/api/v1/portal/generate_url", "post"),
}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == HTTPStatus.OK
    return response.json()


def test_schema_is_valid_openapi(schema):
    validate_schema(schema)  # raises on an invalid document
    assert schema["openapi"].startswith("3.")


def test_generation_has_no_warnings():
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert yaml.safe_load(out.getvalue())["paths"]


def test_every_contract_operation_is_documented_with_its_scope_and_errors(schema):
    documented = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert CONTRACT_OPERATIONS <= documented
    for path, method in CONTRACT_OPERATIONS:
        operation = schema["paths"][path][method]
        assert operation["security"], (path, method)
        assert all(
            set(req) == {"m2mToken"} and len(req["m2mToken"]) == 1 for req in operation["security"]
        )
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert success, (path, method)
        assert "400" in responses and "401" in responses and "403" in responses
        assert responses["403"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorOut"
        )


def test_security_scheme_is_client_credentials_at_the_token_endpoint(schema):
    scheme = schema["components"]["securitySchemes"]["m2mToken"]
    flow = scheme["flows"]["clientCredentials"]
    assert scheme["type"] == "oauth2" and flow["tokenUrl"] == "/oauth2/token"
    assert "verify:api_keys" in flow["scopes"]


def test_verify_documents_alternative_scopes(schema):
    security = schema["paths"]["/api/v1/api_keys/verify"]["post"]["security"]
    assert {s["m2mToken"][0] for s in security} == {"verify:api_keys", "read:api_keys"}


def test_error_body_schema(schema):
    error = schema["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["errors"]
    item = schema["components"]["schemas"]["ErrorItemOut"]
    assert set(item["properties"]) == {"code", "message", "field"}


def test_interactive_docs_page_is_served():
    response = APIClient().get("/api/docs/")
    assert response.status_code == HTTPStatus.OK
    assert b"swagger" in response.content.lower()


def test_the_committed_openapi_document_is_current():
    """docs/openapi.yaml is the reference shipped in the repository (the README points at
    it): it must be exactly what the code generates. `make docs` regenerates it."""
    from pathlib import Path

    committed = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
    generated = StringIO()
    call_command("spectacular", "--validate", stdout=generated)
    assert committed.read_text() == generated.getvalue(), (
        "docs/openapi.yaml is stale: run make docs"
    )


# Operations that take no M2M token: GitHub holds none, its signature authenticates it.
SIGNED_OPERATIONS = {("/api/v1/secret_scanning/github", "post")}


def test_every_operation_has_a_summary_and_names_its_scope(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (path, method)
            if (path, method) in SIGNED_OPERATIONS:
                continue
            assert "Scope: `" in operation.get("description", ""), (path, method)


def test_the_github_door_documents_its_signature_array_body_and_answer(schema):
    operation = schema["paths"]["/api/v1/secret_scanning/github"]["post"]
    assert not operation.get("security")
    assert "Authentication:" in operation["description"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"Github-Public-Key-Identifier", "Github-Public-Key-Signature"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert body["type"] == "array" and answer["type"] == "array"
    item = schema["components"]["schemas"][answer["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(item["properties"]) == {"token_hash", "token_type", "label"}
    assert {"401", "413"} <= set(operation["responses"])
