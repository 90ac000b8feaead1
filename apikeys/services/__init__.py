"""Every write of the domain, and key verification: the one path that the admin, the portal
and the Management API all call.

Services take keyword-only arguments, write inside ``transaction.atomic`` together with their
``AuditEvent``, and return small frozen dataclasses. A key's plaintext exists only in the
``IssuedKey`` returned by :func:`api_key_issue` and :func:`api_key_rotate`.

One module per aggregate, every public name importable from here::

    audit.py         Actor, audit_event_record
    keys.py          api_key_issue, api_key_update, api_key_rotate, api_key_revoke, resolve_scopes
    verification.py  api_key_verify, Verification
    usage.py         api_key_usage_prune (usage history retention)
    policies.py      key policies: KeyPolicy, key_policy_for_*, organization_key_policy_set,
                     organization_key_policy_clear, platform_key_policy_update,
                     api_keys_revoke_idle
    leaks.py         api_key_leak_report, LeakReport (leaked keys: judge, revoke a live one)
    apis.py          api_create, api_delete, scope_create, scope_update, scope_delete
    directory.py     organization_*, user_*, role_*, membership_*
    applications.py  m2m_application_* (M2M clients of the Management API)
    staff.py         staff_group_* (Django auth groups of platform staff)
    webhooks.py      event_record (the one call that emits an event), webhook_* (endpoints,
                     deliveries, retries), the periodic event jobs
    _shared.py       input checks, the owner lock, ``atomic_or_conflict`` (package-private)
"""

from __future__ import annotations

from apikeys.services.apis import api_create, api_delete, scope_create, scope_delete, scope_update
from apikeys.services.applications import (
    IssuedApplication,
    m2m_application_create,
    m2m_application_delete,
    m2m_application_disable,
    m2m_application_enable,
    m2m_application_regenerate_secret,
    m2m_application_set_scopes,
    m2m_application_update,
)
from apikeys.services.audit import Actor, audit_event_record
from apikeys.services.directory import (
    membership_add,
    membership_remove,
    organization_create,
    organization_delete,
    organization_update,
    role_change_permissions,
    role_create,
    role_update,
    user_create,
    user_delete,
    user_update,
)
from apikeys.services.keys import (
    IssuedKey,
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
    resolve_scopes,
)
from apikeys.services.leaks import LeakReport, api_key_leak_report
from apikeys.services.policies import (
    KeyPolicy,
    active_key_count,
    api_keys_revoke_idle,
    key_policy_for_organization,
    key_policy_for_owner,
    key_policy_for_user,
    organization_key_policy_clear,
    organization_key_policy_set,
    platform_key_policy,
    platform_key_policy_update,
)
from apikeys.services.staff import staff_group_create, staff_group_delete, staff_group_update
from apikeys.services.usage import api_key_usage_prune
from apikeys.services.verification import Verification, api_key_verify
from apikeys.services.webhooks import (
    CreatedWebhook,
    event_record,
    webhook_create,
    webhook_delete,
    webhook_delivery_retry,
    webhook_update,
)

__all__ = [
    "Actor",
    "CreatedWebhook",
    "IssuedApplication",
    "IssuedKey",
    "KeyPolicy",
    "LeakReport",
    "Verification",
    "active_key_count",
    "api_create",
    "api_delete",
    "api_key_issue",
    "api_key_leak_report",
    "api_key_revoke",
    "api_key_rotate",
    "api_key_update",
    "api_key_usage_prune",
    "api_key_verify",
    "api_keys_revoke_idle",
    "audit_event_record",
    "event_record",
    "key_policy_for_organization",
    "key_policy_for_owner",
    "key_policy_for_user",
    "m2m_application_create",
    "m2m_application_delete",
    "m2m_application_disable",
    "m2m_application_enable",
    "m2m_application_regenerate_secret",
    "m2m_application_set_scopes",
    "m2m_application_update",
    "membership_add",
    "membership_remove",
    "organization_create",
    "organization_delete",
    "organization_key_policy_clear",
    "organization_key_policy_set",
    "organization_update",
    "platform_key_policy",
    "platform_key_policy_update",
    "resolve_scopes",
    "role_change_permissions",
    "role_create",
    "role_update",
    "scope_create",
    "scope_delete",
    "scope_update",
    "staff_group_create",
    "staff_group_delete",
    "staff_group_update",
    "user_create",
    "user_delete",
    "user_update",
    "webhook_create",
    "webhook_delete",
    "webhook_delivery_retry",
    "webhook_update",
]
