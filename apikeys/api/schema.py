"""OpenAPI (drf-spectacular) description of the Management API: its security (an OAuth 2.0
client-credentials token whose scopes each operation names) and each operation's summary and
description. The committed docs/openapi.yaml is this document (a test keeps it current)."""

from __future__ import annotations

import inspect
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

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
                "clientCredentials": {
                    "tokenUrl": "/oauth2/token",
                    "scopes": dict(MANAGEMENT_SCOPES),
                }
            },
        }


# Words of operation ids written as people write them in a summary.
_WORDS = {"api": "API", "apis": "APIs", "url": "URL", "github": "GitHub"}


class ManagementAutoSchema(AutoSchema):
    """drf-spectacular's schema, with each operation described by what it needs: a summary
    from its operation id ("List API keys"), the handler's docstring or the view's own (never
    one inherited from a base class, which says nothing about the operation), and the scope
    its token must carry."""

    def get_summary(self) -> str | None:
        words = self.get_operation_id().split("_")
        text = " ".join(_WORDS.get(word, word) for word in words)
        return text[:1].upper() + text[1:]

    def get_description(self) -> str:  # type: ignore[override]
        # __doc__ itself, not inspect.getdoc(), which would fall back on a base class's.
        handler = getattr(self.view, self.method.lower(), None)
        own = getattr(handler, "__doc__", None) or vars(type(self.view)).get("__doc__") or ""
        own = inspect.cleandoc(own)
        scopes = getattr(self.view, "required_scopes", {}).get(self.method, [])
        needs = f"Scope: {' or '.join(f'`{scope}`' for scope in scopes)}." if scopes else ""
        return "\n\n".join(part for part in (own, needs) if part)
