"""Input and output serializers of the Management API, one module per aggregate (as the
views), on the strict fields and serializers of ``_base``.

Inputs are strict: a JSON number where a string is expected is an error (no coercion), and
unknown fields are refused, so that a typo never silently drops a value. Every check of a
view's input is here, not in the view: a view calls ``validated`` and gets typed values, ids
in the body already resolved to rows (an unknown one is the domain's ``NotFound``, a 400
naming the field). Errors keep DRF's shape until ``apikeys.api.errors`` turns them into the
contract's body; an uppercase error code (``FIELD_REQUIRED``, ``INVALID_FILTER``) passes
through unchanged. Query strings are read by query serializers (``*Query``), which report
one problem at a time, as the contract's filters always have.

Outputs are written out field by field, never ``fields = "__all__"``.
"""

from __future__ import annotations

from apikeys.api.serializers._base import (
    ErrorItemOut,
    ErrorOut,
    ExactStringField,
    OneErrorAtATime,
    QueryValueField,
    StrictCharField,
    StrictDateTimeField,
    StrictIntegerField,
    StrictSerializer,
    api_in_body,
    iso,
    org_in_body,
    role_in_body,
    user_in_body,
)
from apikeys.api.serializers.api_keys import (
    VERIFY_MESSAGES,
    ApiKeyCreateIn,
    ApiKeyListQuery,
    ApiKeyOut,
    ApiKeyRotateIn,
    ApiKeyUpdateIn,
    ApiKeyVerifyIn,
    SecretOut,
    UsageBucketOut,
    VerificationOut,
    verification_answer,
)
from apikeys.api.serializers.apis import (
    ApiCreateIn,
    ApiDetailOut,
    ApiOut,
    ScopeCreateIn,
    ScopeOut,
    ScopeUpdateIn,
)
from apikeys.api.serializers.leaks import (
    LEAK_LABELS,
    GitHubReportedTokenIn,
    GitHubTokenLabelOut,
    LeakReportIn,
    LeakReportOut,
)
from apikeys.api.serializers.organizations import (
    MemberIn,
    OrganizationCreateIn,
    OrganizationOut,
    OrganizationQuery,
    OrganizationUpdateIn,
    OrganizationUserOut,
    OrganizationUsersIn,
)
from apikeys.api.serializers.policies import KeyPolicyIn, KeyPolicyOut
from apikeys.api.serializers.portal_links import (
    PortalLinkIn,
)
from apikeys.api.serializers.roles import (
    PermissionChangeIn,
    RoleCreateIn,
    RoleOut,
    RolePermissionsIn,
    SystemPermissionOut,
)
from apikeys.api.serializers.users import (
    UserCreateIn,
    UserOut,
    UserQuery,
    UsersQuery,
)
from apikeys.api.serializers.webhooks import (
    WebhookCreateIn,
    WebhookDeliveryOut,
    WebhookOut,
    WebhookUpdateIn,
)

__all__ = [
    "LEAK_LABELS",
    "VERIFY_MESSAGES",
    "ApiCreateIn",
    "ApiDetailOut",
    "ApiKeyCreateIn",
    "ApiKeyListQuery",
    "ApiKeyOut",
    "ApiKeyRotateIn",
    "ApiKeyUpdateIn",
    "ApiKeyVerifyIn",
    "ApiOut",
    "ErrorItemOut",
    "ErrorOut",
    "ExactStringField",
    "GitHubReportedTokenIn",
    "GitHubTokenLabelOut",
    "KeyPolicyIn",
    "KeyPolicyOut",
    "LeakReportIn",
    "LeakReportOut",
    "MemberIn",
    "OneErrorAtATime",
    "OrganizationCreateIn",
    "OrganizationOut",
    "OrganizationQuery",
    "OrganizationUpdateIn",
    "OrganizationUserOut",
    "OrganizationUsersIn",
    "PermissionChangeIn",
    "PortalLinkIn",
    "QueryValueField",
    "RoleCreateIn",
    "RoleOut",
    "RolePermissionsIn",
    "ScopeCreateIn",
    "ScopeOut",
    "ScopeUpdateIn",
    "SecretOut",
    "StrictCharField",
    "StrictDateTimeField",
    "StrictIntegerField",
    "StrictSerializer",
    "SystemPermissionOut",
    "UsageBucketOut",
    "UserCreateIn",
    "UserOut",
    "UserQuery",
    "UsersQuery",
    "VerificationOut",
    "WebhookCreateIn",
    "WebhookDeliveryOut",
    "WebhookOut",
    "WebhookUpdateIn",
    "api_in_body",
    "iso",
    "org_in_body",
    "role_in_body",
    "user_in_body",
    "verification_answer",
]
