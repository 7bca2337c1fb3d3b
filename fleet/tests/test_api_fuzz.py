"""Property-based run of /api/openapi.json (hypothesis + hypothesis-jsonschema): no operation answers 5xx.

For every operation of the published document, with a token holding every scope, hypothesis draws path and
query parameters and JSON bodies from the operation's own schemas, mixed with arbitrary text (so validation is
exercised too), and calls the API through Django's test client: any exception or 5xx fails. The token endpoints
(DRF, outside the document) get the same treatment with arbitrary JSON.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from devtools.testing.auth import bearer, make_api_user
from domain.models import Account, Device, Vehicle

pytestmark = pytest.mark.django_db

IMEI = "861234567890123"
EXAMPLES = int(__import__("os").environ.get("FUZZ_EXAMPLES", "0")) or 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# Text a URL or a JSON body can carry (lone surrogates cannot be encoded at all).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


def inline_refs(schema: Any, components: dict[str, Any]) -> Any:
    """The schema with every local $ref replaced by its target (our contracts are not recursive)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return inline_refs(components[schema["$ref"].rsplit("/", 1)[-1]], components)
        return {key: inline_refs(value, components) for key, value in schema.items()}
    if isinstance(schema, list):
        return [inline_refs(value, components) for value in schema]
    return schema


def schema_values(schema: dict[str, Any]) -> st.SearchStrategy:
    """Values valid for `schema`. Objects are assembled here, leaves come from hypothesis-jsonschema (whose own
    object strategy does not work with the pinned hypothesis)."""
    if schema.get("type") == "object" and "properties" in schema:
        required = set(schema.get("required", []))
        properties = {name: schema_values(sub) for name, sub in schema["properties"].items()}
        return st.fixed_dictionaries(
            {name: values for name, values in properties.items() if name in required},
            optional={name: values for name, values in properties.items() if name not in required},
        )
    if "anyOf" in schema:
        return st.one_of([schema_values(sub) for sub in schema["anyOf"]])
    return from_schema(schema)


def parameter_values(parameters: list[dict[str, Any]], where: str, components: dict[str, Any]) -> st.SearchStrategy:
    chosen = [p for p in parameters if p["in"] == where]
    fields = {}
    for p in chosen:
        valid = schema_values(inline_refs(p["schema"], components))
        values = st.one_of(valid, TEXT) if where == "query" else st.one_of(valid, TEXT, st.just(IMEI))
        fields[p["name"]] = values if p.get("required") else st.one_of(st.none(), values)
    return st.fixed_dictionaries(fields)


def query_string(values: dict[str, Any]) -> dict[str, str]:
    def text(value: Any) -> str:
        return json.dumps(value) if isinstance(value, bool) else str(value)

    return {name: text(value) for name, value in values.items() if value is not None}


def body_values(op: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy:
    content = (op.get("requestBody") or {}).get("content", {}).get("application/json")
    if not content:
        return st.none()
    valid = schema_values(inline_refs(content["schema"], components))
    return st.one_of(valid, st.dictionaries(TEXT, st.one_of(TEXT, st.integers(), st.none()), max_size=3))


@pytest.fixture
def device(db: Any) -> Device:
    vehicle = Vehicle.objects.create(plate="KDA123Z")
    return Device.objects.create(imei=IMEI, account=Account.objects.create(name="Fuzz"), vehicle=vehicle)


def test_it_answers_every_operation_of_the_openapi_document_without_a_5xx(client, device):
    document = client.get("/api/openapi.json").json()
    components = document["components"]["schemas"]
    auth = bearer(access_for_all_scopes())
    operations = [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]
    assert operations
    for path, method, op in operations:
        fuzz_operation(client, auth, path, method, op, components)


def fuzz_operation(
    client: Client, auth: dict[str, str], path: str, method: str, op: dict[str, Any], components: dict[str, Any]
) -> None:
    parameters = op.get("parameters", [])
    calls = st.tuples(
        parameter_values(parameters, "path", components),
        parameter_values(parameters, "query", components),
        body_values(op, components),
    )

    @FUZZ
    @given(calls)
    def call(drawn: tuple[dict[str, Any], dict[str, Any], Any]) -> None:
        path_values, query, body = drawn
        url = path
        for name, value in path_values.items():
            url = url.replace("{" + name + "}", quote(str(value), safe=""))
        if body is None:
            response = getattr(client, method)(url, query_string(query), **auth)
        else:
            url += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query_string(query).items())
            response = getattr(client, method)(url, json.dumps(body), "application/json", **auth)
        assert response.status_code < 500, f"{method.upper()} {url}: {response.status_code}"
        assert response.status_code not in (401, 403), f"{method.upper()} {url}: the token holds every scope"

    call()


def access_for_all_scopes() -> str:
    from devtools.testing.auth import access_for

    return access_for(make_api_user("fuzzer", superuser=True))


@FUZZ
@given(
    url=st.sampled_from(["/api/auth/token", "/api/auth/token/refresh", "/api/auth/token/revoke"]),
    body=st.dictionaries(
        st.sampled_from(["username", "password", "refresh"]),
        st.one_of(TEXT, st.integers(), st.none(), st.lists(TEXT, max_size=2)),
    ),
)
def test_it_answers_the_token_endpoints_without_a_5xx(db: Any, url: str, body: dict[str, Any]) -> None:
    response = Client().post(url, json.dumps(body), "application/json")
    assert response.status_code in (400, 401, 429), response.content
