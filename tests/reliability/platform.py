"""The service as a platform uses it, over HTTP: an M2M application with every scope it
needs for setup, an API with a scope and an organization, keys issued through the
Management API, and a look at the database itself to check what the answers claimed."""

from __future__ import annotations

from typing import Any

from tests.servers import Cluster, Service


class Platform:
    """The service as a platform uses it: one M2M application with every scope for setup,
    an API with a scope and an organization, and helpers that read the database itself."""

    def __init__(self, service: Service, database_url: str, cluster: Cluster) -> None:
        self.service = service
        self.database = database_url.rsplit("/", 1)[1]
        self.cluster = cluster
        client_id, client_secret = service.m2m_app(
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
            "create:portal_links",
            name="Platform backend",
        )
        self.admin = service.token(client_id, client_secret)
        api = self.call(
            "POST", "/api/v1/apis", {"name": "Orders", "audience": "https://orders.example.com"}
        )
        self.api_id = api["api"]["id"]
        self.call(
            "POST",
            f"/api/v1/apis/{self.api_id}/scopes",
            {"key": "read:orders", "description": "Read"},
        )
        self.org_code = self.call("POST", "/api/v1/organization", {"name": "Acme"})["organization"][
            "code"
        ]

    def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        answer = self.service.request(method, path, body, token=self.admin)
        assert answer.status < 300 or answer.status == expect, (answer.status, answer.body)
        return answer.json()

    def issue_key(self, name: str) -> tuple[str, str]:
        created = self.call(
            "POST",
            "/api/v1/api_keys",
            {
                "name": name,
                "api_id": self.api_id,
                "scope_ids": ["read:orders"],
                "org_code": self.org_code,
            },
        )
        return created["api_key"]["id"], created["api_key"]["key"]

    def verifiers(self, count: int) -> list[str]:
        """Tokens of ``count`` new applications holding only ``verify:api_keys``."""
        apps = self.service.m2m_apps(count, "verify:api_keys")
        return [self.service.token(client_id, client_secret) for client_id, client_secret in apps]

    def row(self, key_id: str) -> dict[str, Any]:
        with self.cluster.postgres.connect(self.database) as conn:
            cursor = conn.execute(
                "SELECT verification_count, status, last_verified_on FROM apikeys_apikey WHERE id = %s",
                [key_id],
            )
            count, status, last = cursor.fetchone()
        return {"verification_count": count, "status": status, "last_verified_on": last}

    def written_row(self, key_id: str) -> dict[str, Any]:
        """The key's row once the counts kept in Redis have been written back to it
        (``apikeys_write_back``: with Redis, workers count there and write back every
        interval; the row alone lags by up to one interval)."""
        from tests.servers import manage

        manage(self.service.env, "apikeys_write_back")
        return self.row(key_id)

    def member(self, email: str) -> str:
        """A new user, member of the platform's organization; their id."""
        user_id = str(self.call("POST", "/api/v1/user", {"email": email})["id"])
        self.call(
            "POST", f"/api/v1/organizations/{self.org_code}/users", {"users": [{"id": user_id}]}
        )
        return user_id

    def portal_link(self, user_id: str) -> str:
        """A one-time portal link for ``user_id``: its path on the service."""
        url = str(self.call("POST", "/api/v1/portal/generate_url", {"user_id": user_id})["url"])
        return "/" + url.split("://", 1)[1].split("/", 1)[1]

    def count(self, sql: str, *params: Any) -> int:
        with self.cluster.postgres.connect(self.database) as conn:
            return int(conn.execute(sql, list(params)).fetchone()[0])

    def set_password(self, email: str, password: str) -> None:
        """Give a user a password, as they would set it (hashed with Argon2)."""
        from tests.servers import manage

        code = (
            "from django.contrib.auth import get_user_model\n"
            f"user = get_user_model().objects.get(email={email!r})\n"
            f"user.set_password({password!r})\n"
            "user.save()\n"
        )
        manage(self.service.env, "shell", "-c", code)
