"""OpenAPI (drf-spectacular) description of the Management API's security: an OAuth 2.0
client-credentials token whose scopes each operation names."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from apikeys.models import MANAGEMENT_SCOPES


class ManagementTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.api.base.ManagementTokenAuthentication"
    name = "m2mToken"

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        # Several scopes listed for one method are alternatives: any one of them will do.
        scopes = auto_schema.view.required_scopes.get(auto_schema.method, [])
        return [{self.name: [scope]} for scope in scopes]

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "oauth2",
            "description": "Client-credentials token of an M2M application, from /oauth2/token.",
            "flows": {
                "clientCredentials": {"tokenUrl": "/oauth2/token", "scopes": dict(MANAGEMENT_SCOPES)}
            },
        }
