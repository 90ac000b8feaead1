"""The Django admin for platform admins: every model of the product, written through
:mod:`apikeys.services` so that each change is audited with the admin as actor.

- ``keys``: API keys (list and read-only detail; never delete), with ``keys_filters``
  (list filters) and ``keys_writes`` (issue, shown once; rotate; revoke).
- ``directory``: organizations, users, memberships, roles, system permissions.
- ``apis``: APIs with their scopes.
- ``policies``: key policies (the platform default; an organization's, inline on its page).
- ``applications``: M2M applications and their granted Management API scopes.
- ``staff``: Django's auth groups (bundles of admin permissions for platform staff).
- ``audit``: the audit trail, read-only.
- ``webhooks``: webhooks (secret shown once, disabled state) and their deliveries (retry).
"""

from __future__ import annotations

from apikeys.admin import (  # noqa: F401  (registers)
    apis,
    applications,
    audit,
    directory,
    keys,
    policies,
    staff,
    webhooks,
)
