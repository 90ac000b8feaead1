"""Secrets hygiene: after an end-to-end scenario through every door (the ``createm2mapp``
command, the token endpoint, the Management API, the in-process DRF authentication, a
one-time portal link, a password sign-in, the portal's pages and the admin), no issued key,
client secret, password or portal-link token is anywhere it must not be: any column of
any table, a decoded session, a cookie, the cache, or any log line at DEBUG (SQL statements
with their parameters included).

And no error page or API error echoes a key back, wherever in the request it was put.

What is searched for each key is the part that is never displayed (between the 12-character
prefix and the 4-character suffix that lists show), so a partial leak is caught too.
"""

from __future__ import annotations

import io
import json
import logging
import re
from http import HTTPStatus
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from apikeys import crypto
from portal.views import FORM_TOKENS_SESSION_KEY
from tests.factories import UserFactory
from tests.formtokens import FormTokenClient
from tests.security.conftest import World, token_for
from tests.security.scan import (
    KEY_PATTERN,
    Findings,
    recording_every_log_line,
    scan_cache,
    scan_cookies,
    scan_database,
    scan_lines,
)

pytestmark = pytest.mark.django_db

PASSWORD = "Tr0ub4dor&3-correct-horse"


def hidden_part(key: str) -> str:
    return key[crypto.DISPLAY_PREFIX_LENGTH : -crypto.DISPLAY_SUFFIX_LENGTH]


def secret_in_page(response: Any) -> str:
    [key] = set(KEY_PATTERN.findall(response.content.decode()))
    return str(key)


def form_token(client: Client) -> str:
    return str(client.session[FORM_TOKENS_SESSION_KEY][-1])


class Scenario:
    """Runs the scenario and remembers every secret it was given."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.other_secrets: list[str] = []
        self.clients: list[Client] = []

    def api(
        self, client: APIClient, method: str, path: str, body: Any = None, status: int = 200
    ) -> Any:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == status, (path, response.content)
        return response.json()

    def run(self) -> None:
        # The command door: an operator creates the platform's M2M application.
        out = io.StringIO()
        call_command(
            "createm2mapp",
            "Platform backend",
            *[
                arg
                for s in (
                    "create:api_keys",
                    "read:api_keys",
                    "update:api_keys",
                    "delete:api_keys",
                    "verify:api_keys",
                    "create:apis",
                    "create:api_scopes",
                    "create:organizations",
                    "update:organizations",
                    "create:users",
                    "create:roles",
                    "update:roles",
                    "create:portal_links",
                )
                for arg in ("--scope", s)
            ],
            stdout=out,
        )
        credentials = json.loads(out.getvalue())
        self.other_secrets.append(credentials["client_secret"])
        token = (
            APIClient()
            .post(
                "/oauth2/token",
                {"grant_type": "client_credentials", **credentials},
            )
            .json()["access_token"]
        )
        m2m = APIClient()
        m2m.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

        # The Management API: Kinde's quick start, then rotate (with and without grace),
        # revoke, and verify at each step.
        api_id = self.api(
            m2m, "post", "/api/v1/apis", {"name": "Users", "audience": "https://u.example"}, 201
        )["api"]["id"]
        for scope in ("read:users", "write:users"):
            self.api(m2m, "post", f"/api/v1/apis/{api_id}/scopes", {"key": scope}, 201)
        org = self.api(m2m, "post", "/api/v1/organization", {"name": "Acme"}, 201)["organization"][
            "code"
        ]
        user_id = self.api(m2m, "post", "/api/v1/user", {"email": "ada@example.com"}, 201)["id"]
        role_id = self.api(
            m2m, "post", "/api/v1/roles", {"name": "Key admin", "key": "key-admin"}, 201
        )["role"]["id"]
        self.api(
            m2m,
            "patch",
            f"/api/v1/roles/{role_id}/system_permissions",
            {
                "system_permissions": [
                    {"key": "read:org:authentication"},
                    {"key": "write:org:authentication"},
                ]
            },
        )
        self.api(
            m2m,
            "post",
            f"/api/v1/organizations/{org}/users",
            {"users": [{"id": user_id, "roles": ["key-admin"]}]},
        )
        org_key = self.api(
            m2m,
            "post",
            "/api/v1/api_keys",
            {
                "name": "Backend",
                "api_id": api_id,
                "scope_ids": ["read:users", "write:users"],
                "org_code": org,
            },
            201,
        )["api_key"]
        user_key = self.api(
            m2m,
            "post",
            "/api/v1/api_keys",
            {"name": "Personal", "api_id": api_id, "scope_ids": ["read:users"], "user_id": user_id},
            201,
        )["api_key"]
        self.keys += [org_key["key"], user_key["key"]]
        for key in self.keys:
            assert self.api(m2m, "post", "/api/v1/api_keys/verify", {"api_key": key})["is_valid"]
        typo = org_key["key"][:-1] + ("a" if org_key["key"][-1] != "a" else "b")
        assert not self.api(m2m, "post", "/api/v1/api_keys/verify", {"api_key": typo})["is_valid"]
        self.api(
            m2m,
            "post",
            "/api/v1/api_keys/verify",
            {"api_key": org_key["key"], "audience": "https://other"},
        )
        rotated = self.api(m2m, "put", f"/api/v1/api_keys/{org_key['id']}", {}, 201)["api_key"][
            "key"
        ]
        graced = self.api(
            m2m, "put", f"/api/v1/api_keys/{user_key['id']}", {"expire_previous_in": 600}, 201
        )["api_key"]["key"]
        self.keys += [rotated, graced]
        for key in self.keys:
            self.api(m2m, "post", "/api/v1/api_keys/verify", {"api_key": key})
        self.api(m2m, "delete", f"/api/v1/api_keys/{user_key['id']}")
        assert (
            self.api(m2m, "post", "/api/v1/api_keys/verify", {"api_key": graced})["code"]
            == "API_KEY_REVOKED"
        )

        # The in-process DRF authentication of the platform's own API.
        example = APIClient()
        example.credentials(HTTP_AUTHORIZATION=f"Bearer {rotated}")
        assert example.get("/example/users").status_code == HTTPStatus.OK
        example.credentials(HTTP_AUTHORIZATION=f"Bearer {org_key['key']}")
        assert example.get("/example/users").status_code == HTTPStatus.UNAUTHORIZED

        # A one-time portal link, then the portal: create, rotate, revoke a key.
        url = self.api(
            m2m,
            "post",
            "/api/v1/portal/generate_url",
            {"user_id": user_id, "organization_code": org},
        )["url"]
        link_path = url.split("://", 1)[1].split("/", 1)[1]
        self.other_secrets.append(link_path.rstrip("/").rsplit("/", 1)[1])
        portal = Client()
        self.clients.append(portal)
        assert portal.get("/" + link_path).status_code == HTTPStatus.OK
        assert portal.post("/" + link_path).status_code == HTTPStatus.FOUND
        scopes = self._portal_scope_ids(portal, org)
        portal.get(f"/portal/orgs/{org}/keys/new/")
        created = portal.post(
            f"/portal/orgs/{org}/keys/new/",
            {
                "name": "From the portal",
                "api": api_id,
                "scopes": scopes,
                "form_token": form_token(portal),
            },
        )
        portal_key = secret_in_page(created)
        key_id = re.search(r"/portal/keys/(api_key_[0-9a-f]{32})/", created.content.decode()).group(
            1
        )
        portal.get(f"/portal/keys/{key_id}/rotate/")
        rotated_page = portal.post(
            f"/portal/keys/{key_id}/rotate/",
            {"grace_seconds": "0", "form_token": form_token(portal)},
        )
        self.keys += [portal_key, secret_in_page(rotated_page)]
        portal.post(f"/portal/keys/{key_id}/revoke/")

        # A password sign-in to the portal (Argon2), a failed one first.
        person = UserFactory(email="grace@example.com", username="grace@example.com")
        person.set_password(PASSWORD)
        person.save()
        self.other_secrets.append(PASSWORD)
        signing_in = Client()
        self.clients.append(signing_in)
        signing_in.post(
            "/portal/login/", {"username": "grace@example.com", "password": PASSWORD + "x"}
        )
        assert (
            signing_in.post(
                "/portal/login/", {"username": "grace@example.com", "password": PASSWORD}
            ).status_code
            == HTTPStatus.FOUND
        )

        # The admin: issue a key and rotate it.
        admin = FormTokenClient()
        self.clients.append(admin)
        admin.force_login(UserFactory(is_staff=True, is_superuser=True))
        from apikeys.models import Api, Organization

        issued = admin.post(
            "/admin/apikeys/apikey/add/",
            {
                "name": "From the admin",
                "api": Api.objects.get(pk=api_id).pk,
                "organization": Organization.objects.get(code=org).pk,
                "user": "",
                "expires_at_0": "",
                "expires_at_1": "",
            },
        )
        admin_key = secret_in_page(issued)
        from apikeys.models import ApiKey

        admin_key_id = ApiKey.objects.get(name="From the admin").pk
        rotated_in_admin = admin.post(
            f"/admin/apikeys/apikey/{admin_key_id}/rotate/", {"grace_seconds": "0"}
        )
        self.keys += [admin_key, secret_in_page(rotated_in_admin)]

    @staticmethod
    def _portal_scope_ids(client: Client, org: str) -> list[str]:
        from apikeys.models import Scope

        return list(Scope.objects.filter(key="read:users").values_list("id", flat=True))

    @property
    def searched(self) -> list[str]:
        return [hidden_part(k) for k in self.keys] + self.other_secrets


def test_no_secret_is_stored_or_logged_after_an_end_to_end_scenario() -> None:
    scenario = Scenario()
    with recording_every_log_line() as log:
        scenario.run()

    assert len(set(scenario.keys)) == 8  # 2 API, 2 API rotations, 2 portal, 2 admin
    assert all(crypto.is_well_formed(k) for k in scenario.keys)
    findings = Findings()
    scan_database(scenario.searched, findings)
    scan_cache(scenario.searched, findings)
    for client in scenario.clients:
        scan_cookies(client.cookies, scenario.searched, findings)
        scan_lines([repr(dict(client.session))], scenario.searched, findings, where="session")
    scan_lines(log.lines, scenario.searched, findings)

    assert findings.hits == []
    # It really searched: the whole schema, the scenario's rows, and the SQL it ran.
    assert findings.tables >= 20 and findings.rows >= 50 and findings.log_lines >= 200
    assert any("INSERT INTO" in line for line in log.lines), "SQL statements were recorded"
    print(
        f"\nsecrets hygiene: {len(scenario.searched)} secrets searched in {findings.tables} tables, "
        f"{findings.rows} rows, {findings.cells} cells and {findings.log_lines} log lines: none found"
    )


def test_the_scan_would_find_a_leaked_secret(issued_key: Any) -> None:
    """Positive control: the same scan finds what the database really holds (the digest)
    and a secret that a log line really carries."""
    from django.conf import settings

    digest = crypto.digest(issued_key.plaintext, settings.APIKEYS["HASHING_SECRET"])
    findings = Findings()
    scan_database([digest], findings)
    assert any(hit.startswith("apikeys_apikey.digest") for hit in findings.hits)
    # A password is not secret-shaped (logs redact keys, not every string): it goes through.
    with recording_every_log_line() as log:
        logging.getLogger("apikeys.somewhere").debug("leaking %s", PASSWORD)
    findings = Findings()
    scan_lines(log.lines, [PASSWORD], findings)
    assert findings.hits


# --------------------------------------------------------------------------- errors never echo


def _bodies_carrying(key: str) -> list[tuple[str, str, Any]]:
    """Requests that put a key where it does not belong: as a field name, a scope, an id, a
    filter, a path segment, a token, a cursor, an audience..."""
    return [
        ("post", "/api/v1/api_keys/verify", {key: "x"}),
        ("post", "/api/v1/api_keys/verify", {"api_key": key, key: 1}),
        ("post", "/api/v1/api_keys/verify", {"api_key": [key]}),
        ("post", "/api/v1/api_keys/verify", {"api_key": key, "audience": ["x", key]}),
        ("post", "/api/v1/api_keys", {"name": "n", "api_id": key, "org_code": "org_x"}),
        ("post", "/api/v1/api_keys", {"name": "n", "api_id": "0" * 32, "org_code": key}),
        ("post", "/api/v1/api_keys", {"name": "n", "api_id": "0" * 32, "user_id": key}),
        (
            "post",
            "/api/v1/api_keys",
            {"name": "n", "api_id": "0" * 32, "scope_ids": [key], "org_code": "o"},
        ),
        ("post", "/api/v1/api_keys", {key: "n"}),
        ("post", "/api/v1/api_keys", {"name": "n", "expires_at": key}),
        ("post", "/api/v1/api_keys", {"name": "n", "type": key}),
        ("put", "/api/v1/api_keys/" + key, {}),
        ("put", "/api/v1/api_keys/api_key_" + "0" * 32, {"expire_previous_in": key}),
        ("get", "/api/v1/api_keys/" + key, None),
        ("delete", "/api/v1/api_keys/" + key, None),
        ("get", f"/api/v1/api_keys?starting_after={key}", None),
        ("get", f"/api/v1/api_keys?status={key}", None),
        ("get", f"/api/v1/api_keys?page_size={key}", None),
        ("get", f"/api/v1/{key}", None),
        ("post", "/api/v1/apis", {"name": "n", "audience": "a", key: 1}),
        ("post", "/api/v1/organization", {"name": "n", "code": key}),
        ("post", "/api/v1/user", {"email": key}),
        ("post", "/api/v1/roles", {"name": "n", "key": key}),
        ("post", "/api/v1/portal/generate_url", {"user_id": key}),
        ("post", "/api/v1/portal/generate_url", {"user_id": "kp_" + "0" * 32, "return_url": key}),
        (
            "patch",
            "/api/v1/roles/" + "0" * 32 + "/system_permissions",
            {"system_permissions": [{"key": key}]},
        ),
    ]


def test_api_errors_never_echo_a_key(m2m_client: Any, world: Any) -> None:
    client = m2m_client()
    key = world.keys[0].plaintext
    echoed = []
    for method, path, body in _bodies_carrying(key):
        response = (
            getattr(client, method)(path, body, format="json")
            if body is not None
            else getattr(client, method)(path)
        )
        assert response.status_code in (200, 400, 404, 405), (path, response.status_code)
        if response.status_code != 200:
            assert response.json()["errors"]
        text = response.content.decode()
        if hidden_part(key) in text:
            echoed.append((method, path, text[:200]))
    assert echoed == []


@pytest.mark.parametrize(
    "where", ["bearer", "bearer-management", "basic", "path", "query", "portal-path", "token-form"]
)
def test_error_pages_never_echo_a_key(world: Any, where: str, settings: Any) -> None:
    """A key sent as a credential where it is refused, or typed into a URL, is not in the
    error page, its headers or any page a redirect leads to.

    (An anonymous visitor's URL under /portal/ comes back as the sign-in page's ``next``, as
    Django's login redirect does: that is the visitor's own URL, not an error page.)
    """
    settings.DEBUG = False
    key = world.keys[0].plaintext
    revoked = world.keys[0]
    from apikeys import services

    services.api_key_revoke(api_key=revoked.api_key, actor=services.Actor.system())
    client = Client(raise_request_exception=False)
    if where == "bearer":
        response = client.get("/example/users", HTTP_AUTHORIZATION=f"Bearer {key}")
    elif where == "bearer-management":
        response = client.get("/api/v1/api_keys", HTTP_AUTHORIZATION=f"Bearer {key}")
    elif where == "basic":
        import base64

        credentials = base64.b64encode(f"{key}:{key}".encode()).decode()
        response = client.post(
            "/oauth2/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=f"Basic {credentials}",
        )
    elif where == "path":
        response = client.get(f"/{key}/")
    elif where == "query":
        response = client.get(f"/api/schema/?format={key}")
    elif where == "portal-path":
        client.force_login(world.user)
        response = client.get(f"/portal/keys/{key}/", follow=True)
    else:
        response = client.post(
            "/oauth2/token",
            {"grant_type": "client_credentials", "client_id": key, "client_secret": key},
        )
    assert response.status_code >= 400, response.status_code
    assert hidden_part(key) not in response.content.decode("utf-8", "replace")
    assert all(hidden_part(key) not in v for _, v in response.items())
    assert all(hidden_part(key) not in morsel.value for morsel in client.cookies.values())


# --------------------------------------------------------------------------- logs never carry one


def _everything_logged(caplog: Any) -> str:
    """Every captured record as handlers could write it: the formatted text (exception
    included), the message, the template, the arguments and every string attribute."""
    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
        texts += [record.stack_info or ""]
        texts += [str(v) for v in vars(record).values() if isinstance(v, str)]
    return "\n".join(texts)


def _a_used_portal_link(world: World) -> str:
    """The path of a real portal link, already used (so dead)."""
    from apikeys import services
    from portal import services as portal_services

    url = portal_services.portal_link_create(
        user=world.user, base_url="https://keys.example.com", actor=services.Actor.system()
    )
    path = url.split("://", 1)[1].split("/", 1)[1]
    Client().post("/" + path)
    return "/" + path


@pytest.mark.parametrize(
    "where", ["api-key-path", "api-key-delete-path", "example-path", "portal-link-path", "query"]
)
def test_a_secret_in_a_url_reaches_no_log_record(
    where: str, m2m_client: Any, world: World, caplog: Any, settings: Any
) -> None:
    """Django's request logger writes the path of every 4xx ("Not Found: /api/v1/api_keys/
    k_live_…"): the key, the portal link token or the client secret in that URL is redacted
    from every record the project's handlers see, whatever the request."""
    settings.DEBUG = False
    key = world.keys[0].plaintext
    _application, client_secret, _token = token_for(["read:api_keys"], name="Leaky")
    client = m2m_client(["read:api_keys", "delete:api_keys"])
    anonymous = Client(raise_request_exception=False)
    secrets = [hidden_part(key), client_secret]
    with caplog.at_level(logging.DEBUG):
        if where == "api-key-path":
            response = client.get(f"/api/v1/api_keys/{key}")
        elif where == "api-key-delete-path":
            response = client.delete(f"/api/v1/api_keys/{key}")
        elif where == "example-path":
            response = anonymous.get(f"/example/users/{key}")
        elif where == "portal-link-path":
            link = _a_used_portal_link(world)
            secrets.append(link.rstrip("/").rsplit("/", 1)[1])
            assert anonymous.get(link).status_code == HTTPStatus.FOUND  # used: refused
            response = anonymous.get(link + "extra/")  # no such page: logged as Not Found
        else:
            response = anonymous.post(
                f"/oauth2/token?client_secret={client_secret}&api_key={key}",
                {"grant_type": "client_credentials"},
            )
    assert response.status_code >= 400
    logged = _everything_logged(caplog)
    assert any(r.name == "django.request" for r in caplog.records), "the request was logged"
    assert [s for s in secrets if s in logged] == []


def test_a_secret_in_a_log_call_is_redacted_from_message_arguments_and_exception(
    world: World, caplog: Any
) -> None:
    """The project's own loggers: a key in an argument, an Authorization header, a client
    secret or access token in a query string, a key in an exception's message."""
    key = world.keys[0].plaintext
    secret, token = "s3cr3t-" + "A" * 40, "T" * 30
    logger = logging.getLogger("apikeys.somewhere")
    with caplog.at_level(logging.DEBUG):
        logger.warning("refused %s", key)
        logger.info("headers %r", {"Authorization": f"Bearer {token}"})
        logger.info("Authorization: Basic %s", "Y2xpZW50OnNlY3JldA==" * 2)
        logger.info("GET /oauth2/token?client_secret=%s&access_token=%s", secret, token)
        logger.info("body %s", {"client_secret": secret, "password": secret})
        logger.warning("broken format %s %s", key)  # noqa: PLE1206 (a format error keeps no argument)
        try:
            raise ValueError(f"cannot parse {key}")
        except ValueError:
            logger.exception("failed")
    logged = _everything_logged(caplog)
    assert len(caplog.records) == 7
    for leaked in (hidden_part(key), secret, token, "Y2xpZW50OnNlY3JldA=="):
        assert leaked not in logged, leaked
    assert "k_live_[redacted]" in logged and "failed" in logged and "ValueError" in logged


def test_every_handler_of_the_project_redacts_and_django_logs_once() -> None:
    """The filter sits on every handler ``LOGGING`` installs (the root's console, runserver's
    ``django.server``), and Django's records reach one handler only (issue 14: under DEBUG
    they were printed twice, by Django's own console handler and by the root's)."""
    from apikeys.logging import RedactSecretsFilter

    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    handlers = {
        h
        for lg in loggers
        for h in lg.handlers
        # pytest's capturing handlers, and libraries' NullHandlers (they write nothing)
        if not type(h).__module__.startswith("_pytest") and not isinstance(h, logging.NullHandler)
    }
    assert handlers, "the project configures handlers"
    unfiltered = [
        h for h in handlers if not any(isinstance(f, RedactSecretsFilter) for f in h.filters)
    ]
    assert unfiltered == []
    assert logging.getLogger("django").handlers == []
    assert logging.getLogger("django").propagate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Not Found: /x/k_live_abc123", "Not Found: /x/k_live_[redacted]"),
        ('"GET /portal/link/Ab-_9z/ HTTP/1.1" 302', '"GET /portal/link/[redacted]/ HTTP/1.1" 302'),
        ("next=%2Fportal%2Flink%2FAb-_9z%2F", "next=%2Fportal%2Flink%2F[redacted]%2F"),
        ("?client_id=c&client_secret=s3&x=1", "?client_id=c&client_secret=[redacted]&x=1"),
        ("?access_token=abc HTTP/1.1", "?access_token=[redacted] HTTP/1.1"),
        (
            "{'password': 'two words', \"token\":\"t\"}",
            "{'password': '[redacted]', \"token\":\"[redacted]\"}",
        ),
        ("Authorization: Bearer abcdefghij", "Authorization: Bearer [redacted]"),
        ("Authorization: basic Y2xpZW50OnNlY3JldA==", "Authorization: basic [redacted]"),
        # Left alone: ids, prose, a form's single-submit token, the verify route.
        ("POST /api/v1/api_keys/verify 200", "POST /api/v1/api_keys/verify 200"),
        ("Invalid token: expired; form_token=ab", "Invalid token: expired; form_token=ab"),
        ("Failed basic auth: Can't decode", "Failed basic auth: Can't decode"),
        ("client_id=abc api_key_0123abcd", "client_id=abc api_key_0123abcd"),
    ],
)
def test_what_the_log_filter_redacts_and_what_it_leaves(text: str, expected: str) -> None:
    from apikeys.logging import redact_secrets

    assert redact_secrets(text) == expected
