"""Domain errors, each with the stable ``code`` of the contract's error body.

Services raise these; the API layer maps them to HTTP in one exception handler, the portal
and the admin turn them into form errors. ``status`` is the usual HTTP status; the API layer
may pick another where the contract says so (an unknown id in the path is a 404, the same id
in a body a 400). ``field`` names the input at fault, where there is one.
"""

from __future__ import annotations

from http import HTTPStatus


class ApiKeysError(Exception):
    """Base of every domain error."""

    code = "INVALID_REQUEST"
    status = HTTPStatus.BAD_REQUEST
    default_message = "The request is not valid."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        super().__init__(self.message)


class ValidationFailed(ApiKeysError):
    """A value has the wrong format or is out of range; ``code`` says which rule."""

    def __init__(self, message: str, *, code: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code


class NotFound(ApiKeysError):
    status = HTTPStatus.NOT_FOUND


class ApiNotFound(NotFound):
    code = "API_NOT_FOUND"
    default_message = "No API with that id."


class ScopeNotFound(NotFound):
    code = "SCOPE_NOT_FOUND"
    default_message = "No scope with that id or key in this API."


class ApiKeyNotFound(NotFound):
    code = "API_KEY_NOT_FOUND"
    default_message = "No API key with that id."


class OrganizationNotFound(NotFound):
    code = "ORGANIZATION_NOT_FOUND"
    default_message = "No organization with that code."


class UserNotFound(NotFound):
    code = "USER_NOT_FOUND"
    default_message = "No user with that id."


class RoleNotFound(NotFound):
    code = "ROLE_NOT_FOUND"
    default_message = "No role with that id or key."


class PermissionNotFound(NotFound):
    code = "PERMISSION_NOT_FOUND"
    default_message = "No system permission with that key."


class Conflict(ApiKeysError):
    status = HTTPStatus.CONFLICT


class AudienceTaken(Conflict):
    code = "AUDIENCE_TAKEN"
    default_message = "Another API already has this audience."


class ScopeKeyTaken(Conflict):
    code = "SCOPE_KEY_TAKEN"
    default_message = "This API already has a scope with this key."


class RoleKeyTaken(Conflict):
    code = "ROLE_KEY_TAKEN"
    default_message = "A role with this key already exists."


class OrganizationCodeTaken(Conflict):
    code = "ORGANIZATION_CODE_TAKEN"
    default_message = "An organization with this code already exists."


class GroupNameTaken(Conflict):
    code = "GROUP_NAME_TAKEN"
    default_message = "A staff group with this name already exists."


class EmailTaken(Conflict):
    code = "EMAIL_TAKEN"
    default_message = "A user with this email already exists."


class ApiInUse(Conflict):
    code = "API_IN_USE"
    default_message = "Active API keys still use this API; revoke them first."


class ScopeInUse(Conflict):
    code = "SCOPE_IN_USE"
    default_message = "Active API keys still use this scope; revoke them first."


class OwnerRequired(ApiKeysError):
    code = "OWNER_REQUIRED"
    default_message = "An API key needs an owner: give exactly one of org_code or user_id."


class OwnerAmbiguous(ApiKeysError):
    code = "OWNER_AMBIGUOUS"
    default_message = "An API key has exactly one owner: give org_code or user_id, not both."


class ApiKeyRevoked(ApiKeysError):
    code = "API_KEY_REVOKED"
    default_message = "This API key is revoked."


class ApiKeyExpired(ApiKeysError):
    code = "API_KEY_EXPIRED"
    default_message = "This API key has expired."


class UsageRangeTooLarge(ApiKeysError):
    code = "USAGE_RANGE_TOO_LARGE"
    default_message = "The range is too large for that granularity."


class UserNotInOrganization(ApiKeysError):
    code = "USER_NOT_IN_ORGANIZATION"
    default_message = "The user is not a member of this organization."


class KeyLimitReached(Conflict):
    """The owner already holds as many active keys as its key policy allows."""

    code = "KEY_LIMIT_REACHED"
    default_message = "This owner already has as many active API keys as its key policy allows."


class ExpiresAtBeyondPolicy(ApiKeysError):
    """``expires_at`` is later than the owner's key policy allows."""

    code = "EXPIRES_AT_BEYOND_POLICY"
    default_message = "expires_at is later than the key policy allows."


class InvalidEndpointUrl(ApiKeysError):
    """A webhook endpoint that is not http(s), or that points at a private, loopback or
    link-local address (refused unless ``WEBHOOKS_ALLOW_PRIVATE_TARGETS``)."""

    code = "INVALID_ENDPOINT_URL"
    default_message = "The endpoint URL is not allowed."


class WebhookNotFound(NotFound):
    code = "WEBHOOK_NOT_FOUND"
    default_message = "No such webhook."


class WebhookDeliveryNotFound(NotFound):
    code = "WEBHOOK_DELIVERY_NOT_FOUND"
    default_message = "No such webhook delivery."
