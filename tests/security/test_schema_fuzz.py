"""Schemathesis against the service's own OpenAPI document (``/api/schema/``).

Every operation of the document is fuzzed with a real token carrying every Management API
scope, in positive mode (requests the schema allows) and negative mode (requests it does
not), with path and body ids now and then pointed at real objects so that the cases reach
past the first lookup. Each response must:

- never be a 5xx (``not_a_server_error``);
- have a status code, content type, headers and body that the document declares
  (``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``);
- refuse what the schema does not allow (``negative_data_rejection``);
- never echo a key the service issued before (``no_issued_key_echoed``).

The requests run in-process through Django's WSGI handler (no server, no sockets): the
database is the test database of the run, so the same cases run on SQLite and on
PostgreSQL. ``CASES_PER_OPERATION`` × the operations is the per-run figure (at least 2,000);
each test asserts that its share really ran, so a strategy that silently generates nothing
cannot pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.conftest import ALL_SCOPES, World, token_for

pytestmark = pytest.mark.django_db

# 29 operations × 70 = 2,030 cases per run of the suite.
CASES_PER_OPERATION = 70
MIN_TOTAL_CASES = 2_000


# The refusals ``negative_data_rejection`` accepts: schemathesis's own list, plus 413 (a
# negative body over 64 KiB is refused for its size before its shape is looked at), less
# 5xx (never acceptable: ``not_a_server_error``).
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]


def _load_schema() -> Any:
    # The document as the running service publishes it, fetched through the WSGI app.
    config = SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
    )
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler(), config=config)


SCHEMA = _load_schema()
OPERATIONS = {
    f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())
}


def test_negative_cases_count_only_refusals_as_rejection():
    operation = next(iter(OPERATIONS.values()))
    config = SCHEMA.config.checks_config_for(operation=operation, phase="fuzzing")
    assert config.negative_data_rejection.expected_statuses == REFUSALS


def test_the_document_is_fuzzed_for_at_least_two_thousand_cases_per_run():
    """The figure the issue asks for: every operation, times the per-operation quota."""
    assert len(OPERATIONS) * CASES_PER_OPERATION >= MIN_TOTAL_CASES
    # Every route of the Management API is in the document (nothing escapes the fuzzer).
    from apikeys.api.urls import urlpatterns

    named_routes = [p for p in urlpatterns if p.name != "route-not-found"]
    documented_paths = {op.path for op in OPERATIONS.values()}
    assert len(documented_paths) == len(named_routes)


def no_issued_key_echoed(world: World) -> Any:
    """A check: no response body carries a key issued before the request was made.

    (Create and rotate answer with a *new* key, once; that one is not in the world yet.)
    """

    def check(ctx: Any, response: Any, case: Any) -> bool:
        text = response.content.decode("utf-8", "replace")
        for plaintext in world.plaintexts:
            if plaintext in text:
                raise AssertionError(f"{case.method} {case.path} echoed an issued key")
        return True

    return check


def _realistic(draw: Any, world: World, case: Any) -> None:
    """Now and then point ids in the path and the body at real objects, so that a case gets
    past "not found" and exercises the write paths (create, rotate, revoke, delete...)."""
    real_path = {
        "key_id": [k.api_key.id for k in world.keys],
        "api_id": [world.api.id],
        "scope_id": [s.id for s in world.scopes],
        "org_code": [world.organization.code],
        "role_id": [world.role.id],
    }
    for name in list(case.path_parameters or {}):
        if name in real_path and draw(st.booleans()):
            case.path_parameters[name] = draw(st.sampled_from(real_path[name]))
    if isinstance(case.body, dict) and draw(st.booleans()):
        real_body = {
            "api_id": world.api.id,
            "org_code": world.organization.code,
            "organization_code": world.organization.code,
            "user_id": world.user.public_id,
            "scope_ids": [s.key for s in world.scopes],
            "api_key": draw(st.sampled_from(world.plaintexts)),
        }
        for name, value in real_body.items():
            if name in case.body and draw(st.booleans()):
                case.body[name] = value


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@contextmanager
def keeping_the_test_connection() -> Iterator[None]:
    """Django closes "old" connections around each request; the WSGI handler would close
    the test's own connection, inside its transaction (a no-op on SQLite's in-memory
    database, a lost connection on PostgreSQL). Django's test client disconnects the same
    handlers for the same reason."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_holds_under_fuzzing(label: str, world: World) -> None:
    operation = OPERATIONS[label]
    _app, _secret, token = token_for(ALL_SCOPES, name="Fuzzer")
    headers = {"Authorization": f"Bearer {token}"}
    echo_check = no_issued_key_echoed(world)
    ran = {"positive": 0, "negative": 0}

    strategy = st.tuples(
        st.just("positive"), operation.as_strategy(GenerationMode.POSITIVE)
    ) | st.tuples(st.just("negative"), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(
        max_examples=CASES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(drawn=strategy, data=st.data())
    def run(drawn: tuple[str, Any], data: Any) -> None:
        mode, case = drawn
        if mode == "positive":
            # Only positive cases: an edit could turn a negative case into a valid one.
            _realistic(data.draw, world, case)
        response = case.call(headers=headers)
        checks = [*CHECKS, echo_check]
        if mode == "negative":
            checks.append(negative_data_rejection)
        case.validate_response(response, checks=checks, headers=headers)
        ran[mode] += 1

    with keeping_the_test_connection():
        run()
    # Hypothesis may stop early only if the input space is exhausted; none of ours is.
    assert sum(ran.values()) >= CASES_PER_OPERATION, ran
