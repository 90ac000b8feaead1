"""The apikeys domain: people and organizations, APIs and scopes, keys and the audit trail.

Models hold fields, constraints and cheap properties. Every write goes through
``apikeys.services``; nothing here carries business rules of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from oauth2_provider.settings import oauth2_settings
from uuid6 import uuid7

# Public id formats. Time-ordered (UUIDv7) where the contract lists newest first by id.
ORG_CODE_PATTERN = r"^org_[a-z0-9]{1,60}$"
SCOPE_KEY_PATTERN = r"^\S{1,64}$"
ROLE_KEY_PATTERN = r"^[a-z0-9][a-z0-9_:.-]{0,63}$"
API_ID_PATTERN = r"^[0-9a-f]{32}$"
API_KEY_ID_PATTERN = r"^api_key_[0-9a-f]{32}$"
SCOPE_ID_PATTERN = r"^api_scope_[0-9a-f]{32}$"
USER_ID_PATTERN = r"^kp_[0-9a-f]{32}$"


def new_hex_id() -> str:
    return uuid7().hex


def new_api_key_id() -> str:
    return f"api_key_{uuid7().hex}"


def new_scope_id() -> str:
    return f"api_scope_{uuid7().hex}"


def new_user_public_id() -> str:
    return f"kp_{uuid7().hex}"


def new_org_code() -> str:
    return f"org_{secrets.token_hex(6)}"


class User(AbstractUser):
    """The project's user. ``public_id`` (``kp_…``) is what the API and the portal show."""

    public_id = models.CharField(
        max_length=40, unique=True, default=new_user_public_id, editable=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="apikeys_user_email_ci_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.username

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.email or self.username


class Organization(models.Model):
    """A customer organization; its public ``code`` never changes once created."""

    code = models.CharField(
        max_length=64,
        unique=True,
        default=new_org_code,
        validators=[RegexValidator(ORG_CODE_PATTERN)],
        help_text="Public code, org_ followed by lowercase letters and digits.",
    )
    name = models.CharField(max_length=128)
    created_on = models.DateTimeField(default=timezone.now, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="Membership",
        related_name="organizations",
        blank=True,
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class SystemPermission(models.Model):
    """A permission the product itself understands (``read:org:authentication``, …)."""

    READ_ORG_AUTHENTICATION = "read:org:authentication"
    WRITE_ORG_AUTHENTICATION = "write:org:authentication"

    key = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class Role(models.Model):
    """A role members hold within organizations, granting system permissions."""

    id = models.CharField(primary_key=True, max_length=32, default=new_hex_id, editable=False)
    key = models.CharField(
        max_length=64, unique=True, validators=[RegexValidator(ROLE_KEY_PATTERN)]
    )
    name = models.CharField(max_length=128)
    description = models.CharField(max_length=255, blank=True)
    system_permissions = models.ManyToManyField(SystemPermission, related_name="roles", blank=True)
    created_on = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's membership of an organization, with the roles they hold there."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    roles = models.ManyToManyField(Role, related_name="memberships", blank=True)
    joined_on = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user"], name="apikeys_membership_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization}"


class Api(models.Model):
    """An API of the platform that keys are issued for, told apart by its audience."""

    id = models.CharField(primary_key=True, max_length=32, default=new_hex_id, editable=False)
    name = models.CharField(max_length=64)
    audience = models.CharField(max_length=64, unique=True)
    created_on = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "API"

    def __str__(self) -> str:
        return f"{self.name} ({self.audience})"


class Scope(models.Model):
    """A permission of one API (``read:users``); keys carry a set of them."""

    id = models.CharField(primary_key=True, max_length=64, default=new_scope_id, editable=False)
    api = models.ForeignKey(Api, on_delete=models.CASCADE, related_name="scopes")
    key = models.CharField(max_length=64, validators=[RegexValidator(SCOPE_KEY_PATTERN)])
    description = models.CharField(max_length=255, blank=True)
    created_on = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["api", "key"], name="apikeys_scope_key_unique_in_api"),
        ]

    def __str__(self) -> str:
        return self.key


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    """Keys as every reader should see them: with the verifications counted since the last
    write-back added (``apikeys.keycache`` installs :attr:`live_counts` when it is in use),
    so ``verification_count``, ``last_verified_on`` and ``last_verified_ip`` read exact in
    the API, the admin and the portal. Rows locked for a write are left as stored."""

    # Called with the fetched keys; set by apikeys.apps (an extension point, so that this
    # lowest layer imports nothing above it).
    live_counts: ClassVar[Callable[[list[Any]], None] | None] = None

    def _fetch_all(self) -> None:
        fresh = self._result_cache is None
        super()._fetch_all()
        merge = type(self).live_counts
        if (
            fresh
            and merge is not None
            and self._result_cache
            and not self.query.select_for_update
            and issubclass(self._iterable_class, models.query.ModelIterable)
        ):
            merge(self._result_cache)

    def visible_to(self, user: Any) -> ApiKeyQuerySet:
        """Keys a portal user may see: their own, and those of organizations where one of
        their roles grants ``read:org:authentication``."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        readable_orgs = Membership.objects.filter(
            user=user,
            roles__system_permissions__key=SystemPermission.READ_ORG_AUTHENTICATION,
        ).values("organization_id")
        return self.filter(models.Q(user=user) | models.Q(organization__in=readable_orgs))


class ApiKey(models.Model):
    """An API key. The secret itself is never stored: only its keyed digest.

    Owned by exactly one organization or one user (database constraints). The API's id and
    audience, the scope keys and the owner's public code are kept on the row as written at
    issue time: they never change for a key, they keep revoked keys readable after their API
    or scope is deleted, and they let verification answer from this one row. Deleting the
    owner revokes the key and keeps it, with that code.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    class Type(models.TextChoices):
        ORGANIZATION = "organization", "Organization"
        USER = "user", "User"

    id = models.CharField(primary_key=True, max_length=64, default=new_api_key_id, editable=False)
    name = models.CharField(max_length=128)
    # Indexed in Meta (a plain index): the default FK index on a text key comes with a
    # second, LIKE-only copy that nothing here uses and every insert would pay for.
    api = models.ForeignKey(
        Api,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_keys",
        db_index=False,
    )
    api_public_id = models.CharField("API id", max_length=32, editable=False)
    audience = models.CharField(max_length=64, editable=False)
    scopes = models.ManyToManyField(Scope, related_name="api_keys", blank=True)
    scope_keys = models.TextField(
        blank=True, editable=False, help_text="Scope keys at issue time, space-separated."
    )
    # The owner. Deleting it revokes its keys first (``services.organization_delete`` /
    # ``user_delete``), then leaves them without the link: they are kept, with the owner's
    # public code below, and the database refuses an active key without an owner.
    organization = models.ForeignKey(
        Organization, on_delete=models.SET_NULL, null=True, blank=True, related_name="api_keys"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_keys",
    )
    org_code = models.CharField(max_length=64, blank=True, editable=False)
    user_public_id = models.CharField("user id", max_length=40, blank=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Unique through Meta.constraints rather than unique=True, which on PostgreSQL adds a
    # second (LIKE) index per column: digests are only ever looked up by equality.
    digest = models.CharField(max_length=64, editable=False)
    previous_digest = models.CharField(max_length=64, null=True, blank=True, editable=False)
    previous_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    key_prefix = models.CharField(max_length=12, editable=False)
    key_suffix = models.CharField(max_length=4, editable=False)
    created_by = models.CharField(max_length=200, blank=True, editable=False)
    created_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_by_application = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_on = models.DateTimeField(default=timezone.now, editable=False)
    rotated_on = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_on = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_verified_on = models.DateTimeField(null=True, blank=True, editable=False)
    last_verified_ip = models.GenericIPAddressField(
        "last verified IP", null=True, blank=True, editable=False
    )
    verification_count = models.PositiveBigIntegerField(default=0, editable=False)
    # The last generation of counts written back from Redis into the three fields above
    # (apikeys.keycache): a generation is added to a row once, and a reader adds only the
    # generations after it.
    counts_generation = models.PositiveBigIntegerField(default=0, editable=False)
    # Usage limits (apikeys.limits): at most ``ratelimit_limit`` valid verifications in any
    # ``ratelimit_duration`` seconds; credits used by valid verifications, refilled lazily
    # (``credits_period`` is the refill period ``credits_remaining`` belongs to: a day or a
    # month number, see apikeys.limits.period_of). None: no such limit.
    ratelimit_limit = models.PositiveIntegerField(null=True, blank=True)
    ratelimit_duration = models.PositiveIntegerField(null=True, blank=True)
    credits_remaining = models.BigIntegerField(null=True, blank=True)
    credits_refill_interval = models.CharField(max_length=8, blank=True, default="")
    credits_refill_amount = models.BigIntegerField(null=True, blank=True)
    credits_period = models.BigIntegerField(null=True, blank=True, editable=False)
    # Bumped by every change of the limits: credits kept in Redis for an older value are
    # dropped, never written over the new one (apikeys.keycache).
    limits_version = models.PositiveIntegerField(default=0, editable=False)
    # The refill period of the first refusal for lack of credits: api_key.usage_exceeded is
    # sent once per period.
    credits_exceeded_period = models.BigIntegerField(null=True, blank=True, editable=False)
    # The open hour of usage history, on the row (apikeys.keycache's write-back): its counts
    # by outcome are written here with the key's counts, in the same row update, and added
    # to that hour's ApiKeyUsage row when a later hour opens. So a write-back writes one row
    # per key, not two. Readers add them (selectors.api_key_usage, api_key_usage_daily); an
    # ApiKeyUsage row for the open hour always exists (zeros at first), so that a query over
    # the hours finds the key. None: no hour open.
    usage_hour = models.DateTimeField(null=True, blank=True, editable=False)
    usage_hour_verified = models.PositiveBigIntegerField(default=0, editable=False)
    usage_hour_rate_limited = models.PositiveBigIntegerField(default=0, editable=False)
    usage_hour_usage_exceeded = models.PositiveBigIntegerField(default=0, editable=False)
    usage_hour_revoked = models.PositiveBigIntegerField(default=0, editable=False)
    usage_hour_expired = models.PositiveBigIntegerField(default=0, editable=False)
    usage_hour_wrong_audience = models.PositiveBigIntegerField(default=0, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-id"]
        # refresh_from_db() and related lookups read live counts too (ApiKeyQuerySet).
        base_manager_name = "objects"
        constraints = [
            # Exactly one owner, named by its public code (kept after the owner is deleted).
            models.CheckConstraint(
                condition=(
                    (~models.Q(org_code="") & models.Q(user_public_id=""))
                    | (models.Q(org_code="") & ~models.Q(user_public_id=""))
                ),
                name="apikeys_apikey_exactly_one_owner_code",
            ),
            # A link to an owner only of the kind the code names.
            models.CheckConstraint(
                condition=(
                    (models.Q(organization__isnull=True) | ~models.Q(org_code=""))
                    & (models.Q(user__isnull=True) | ~models.Q(user_public_id=""))
                ),
                name="apikeys_apikey_owner_link_matches_code",
            ),
            # A key whose owner is gone can only be a revoked one.
            models.CheckConstraint(
                condition=(
                    models.Q(organization__isnull=False)
                    | models.Q(user__isnull=False)
                    | models.Q(status="revoked")
                ),
                name="apikeys_apikey_ownerless_is_revoked",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "revoked"]),
                name="apikeys_apikey_status_valid",
            ),
            models.UniqueConstraint(fields=["digest"], name="apikeys_apikey_digest_unique"),
            models.UniqueConstraint(
                fields=["previous_digest"], name="apikeys_apikey_previous_digest_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["api"], name="apikeys_key_api_fk"),
            models.Index(fields=["org_code", "id"], name="apikeys_key_org_id"),
            models.Index(fields=["user_public_id", "id"], name="apikeys_key_user_id"),
            models.Index(fields=["api_public_id", "id"], name="apikeys_key_api_id"),
            models.Index(fields=["status", "id"], name="apikeys_key_status_id"),
        ]

    @property
    def is_limited(self) -> bool:
        return self.ratelimit_limit is not None or self.credits_remaining is not None

    def __str__(self) -> str:
        # Never the secret or its digest: only what the lists show.
        return f"{self.name} ({self.key_prefix}…{self.key_suffix})"

    def __repr__(self) -> str:
        return f"<ApiKey {self.id} {self.status}>"

    @property
    def type(self) -> str:
        return self.Type.ORGANIZATION if self.org_code else self.Type.USER

    @property
    def owner_deleted(self) -> bool:
        """The owner was deleted: the key is revoked and kept, with the owner's code."""
        return self.organization_id is None and self.user_id is None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def effective_status(self) -> str:
        """``active``, ``revoked`` or ``expired``: what the contract calls the status."""
        if self.status == self.Status.REVOKED:
            return self.Status.REVOKED
        return "expired" if self.is_expired else self.Status.ACTIVE

    @property
    def scope_list(self) -> list[str]:
        return self.scope_keys.split()

    @property
    def owner_code(self) -> str:
        return self.org_code or self.user_public_id


# The Management API's scopes, granted to M2M applications and carried by their tokens.
MANAGEMENT_SCOPES: dict[str, str] = {
    "read:api_keys": "List and read API keys (and verify them, as Kinde documents)",
    "create:api_keys": "Create API keys",
    "update:api_keys": "Rotate API keys",
    "delete:api_keys": "Revoke API keys",
    "verify:api_keys": "Verify API keys, and nothing else",
    "read:apis": "List and read APIs",
    "create:apis": "Create APIs",
    "update:apis": "Change APIs",
    "delete:apis": "Delete APIs",
    "read:api_scopes": "List and read API scopes",
    "create:api_scopes": "Create API scopes",
    "update:api_scopes": "Change API scopes",
    "delete:api_scopes": "Delete API scopes",
    "read:organizations": "List and read organizations and their members",
    "create:organizations": "Create organizations",
    "update:organizations": "Change organizations and their members",
    "read:users": "List and read users",
    "create:users": "Create users",
    "update:users": "Change users",
    "read:roles": "List and read roles and system permissions",
    "create:roles": "Create roles",
    "update:roles": "Change roles and their system permissions",
    "create:portal_links": "Create one-time self-serve portal links",
    "report:api_key_leaks": "Report leaked API keys (a key found active is revoked at once)",
    "read:webhooks": "List and read webhooks and their deliveries",
    "create:webhooks": "Create webhooks",
    "update:webhooks": "Change webhooks and retry their deliveries",
    "delete:webhooks": "Delete webhooks",
}


class M2MGrant(models.Model):
    """The Management API scopes granted to one machine-to-machine application.

    django-oauth-toolkit's ``Application`` holds the client credentials (its secret hashed);
    this row says what its tokens may carry.
    """

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="m2m_grant"
    )
    scopes = models.TextField(blank=True, help_text="Granted scopes, space-separated.")
    # Set while the application is disabled: it gets no token and the tokens it holds are
    # refused (apikeys.oauth). Kept here rather than on django-oauth-toolkit's model, which
    # is not ours to migrate.
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "M2M application grant"

    def __str__(self) -> str:
        return f"Grant of {self.application}"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Append-only: bulk updates and deletes are refused."""

    def update(self, **kwargs: Any) -> int:
        raise TypeError("The audit trail is append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("The audit trail is append-only.")


class AuditEvent(models.Model):
    """One change made by a person, an M2M application or the system. Append-only."""

    class Action(models.TextChoices):
        API_KEY_ISSUED = "api_key.issued", "API key issued"
        API_KEY_ROTATED = "api_key.rotated", "API key rotated"
        API_KEY_REVOKED = "api_key.revoked", "API key revoked"
        API_KEY_UPDATED = "api_key.updated", "API key changed"
        API_CREATED = "api.created", "API created"
        API_DELETED = "api.deleted", "API deleted"
        SCOPE_CREATED = "scope.created", "Scope created"
        SCOPE_UPDATED = "scope.updated", "Scope changed"
        SCOPE_DELETED = "scope.deleted", "Scope deleted"
        ORGANIZATION_CREATED = "organization.created", "Organization created"
        ORGANIZATION_UPDATED = "organization.updated", "Organization changed"
        USER_CREATED = "user.created", "User created"
        MEMBERSHIP_ADDED = "membership.added", "Member added"
        MEMBERSHIP_ROLES_CHANGED = "membership.roles_changed", "Member's roles changed"
        MEMBERSHIP_REMOVED = "membership.removed", "Member removed"
        ROLE_CREATED = "role.created", "Role created"
        ROLE_UPDATED = "role.updated", "Role changed"
        ROLE_PERMISSIONS_CHANGED = "role.permissions_changed", "Role's permissions changed"
        ORGANIZATION_DELETED = "organization.deleted", "Organization deleted"
        USER_UPDATED = "user.updated", "User changed"
        USER_DELETED = "user.deleted", "User deleted"
        APPLICATION_CREATED = "application.created", "M2M application created"
        APPLICATION_UPDATED = "application.updated", "M2M application changed"
        APPLICATION_DELETED = "application.deleted", "M2M application deleted"
        APPLICATION_DISABLED = "application.disabled", "M2M application disabled"
        APPLICATION_ENABLED = "application.enabled", "M2M application enabled"
        APPLICATION_SECRET_REGENERATED = (
            "application.secret_regenerated",
            "M2M application secret regenerated",
        )
        PORTAL_LINK_CREATED = "portal_link.created", "Portal link created"
        PORTAL_LINK_USED = "portal_link.used", "Portal link used"
        PORTAL_LINKS_PURGED = "portal_link.purged", "Expired portal links purged"
        SELF_SERVE_SETTINGS_CHANGED = "self_serve_settings.changed", "Self-serve settings changed"
        STAFF_GROUP_CREATED = "staff_group.created", "Staff group created"
        STAFF_GROUP_UPDATED = "staff_group.updated", "Staff group changed"
        STAFF_GROUP_DELETED = "staff_group.deleted", "Staff group deleted"
        KEY_POLICY_CHANGED = "api_key_policy.changed", "API key policy changed"
        WEBHOOK_CREATED = "webhook.created", "Webhook created"
        WEBHOOK_UPDATED = "webhook.updated", "Webhook changed"
        WEBHOOK_DELETED = "webhook.deleted", "Webhook deleted"
        WEBHOOK_DISABLED = "webhook.disabled", "Webhook disabled after failing"
        WEBHOOK_DELIVERY_RETRIED = "webhook.delivery_retried", "Webhook delivery retried"

    class ActorType(models.TextChoices):
        USER = "user", "Person"
        APPLICATION = "application", "M2M application"
        SYSTEM = "system", "System"

    occurred_on = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    action = models.CharField(max_length=64, choices=Action.choices, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_application = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, db_index=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    org_code = models.CharField(max_length=64, blank=True)
    user_public_id = models.CharField("owner user id", max_length=40, blank=True)
    ip = models.GenericIPAddressField("IP", null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_on", "-id"]
        indexes = [models.Index(fields=["org_code", "occurred_on"], name="apikeys_audit_org")]

    def __str__(self) -> str:
        return f"{self.occurred_on:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("The audit trail is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("The audit trail is append-only.")


# The grace periods a person picks from when rotating a key (the portal and the admin): how
# long the previous secret keeps working. The API takes any number of seconds up to
# MAX_ROTATION_GRACE_SECONDS; the admin adds a custom value.
ROTATION_GRACE_CHOICES: list[tuple[int, str]] = [
    (0, "Immediately: the current secret stops working now"),
    (3600, "After 1 hour"),
    (24 * 3600, "After 24 hours"),
    (7 * 24 * 3600, "After 7 days"),
]


class RateLimitHit(models.Model):
    """One counted event of a rate limit, for the limiter's database storage
    (:mod:`apikeys.ratelimit`): what the embedded default (no Redis) counts in, so that every
    worker process shares one count. Rows older than their window are deleted as the limiter
    goes; nothing else reads or writes this table."""

    key = models.CharField(max_length=255)
    at = models.FloatField(help_text="Unix time of the event.")

    class Meta:
        indexes = [models.Index(fields=["key", "at"], name="apikeys_ratelimit_key_at")]

    def __str__(self) -> str:
        return f"{self.key} at {self.at}"


class ApiKeyUsage(models.Model):
    """One hour of one key's verifications, by outcome: the usage history of the API
    (``GET /api/v1/api_keys/{key_id}/usage``) and of the portal's and the admin's charts.

    ``verified`` counts exactly the verifications that ``verification_count`` counts, so the
    buckets of a key, with its open hour (``ApiKey.usage_hour``, written by the Redis
    write-back on the key's row), add up to it; the refusals are counted by why. Buckets older than
    ``APIKEYS_USAGE_RETENTION_DAYS`` are deleted by ``manage.py apikeys_prune_usage``."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    start = models.DateTimeField(help_text="The hour's start, UTC.")
    verified = models.PositiveBigIntegerField(default=0)
    rate_limited = models.PositiveBigIntegerField(default=0)
    usage_exceeded = models.PositiveBigIntegerField(default=0)
    revoked = models.PositiveBigIntegerField(default=0)
    expired = models.PositiveBigIntegerField(default=0)
    wrong_audience = models.PositiveBigIntegerField(default=0)

    OUTCOMES: ClassVar[tuple[str, ...]] = (
        "verified",
        "rate_limited",
        "usage_exceeded",
        "revoked",
        "expired",
        "wrong_audience",
    )

    class Meta:
        verbose_name = "API key usage (hour)"
        verbose_name_plural = "API key usage (hours)"
        constraints = [
            models.UniqueConstraint(fields=["api_key", "start"], name="apikeys_usage_key_hour")
        ]
        indexes = [models.Index(fields=["start"], name="apikeys_usage_start")]

    def __str__(self) -> str:
        return f"{self.api_key_id} from {self.start:%Y-%m-%d %H:00}"


class ApiKeyRateStamp(models.Model):
    """The time of one valid verification of a rate-limited key, kept for the key's window
    (``ratelimit_duration``) on the database path (no Redis): the sliding window is exact
    because it is counted, under the key's row lock, from these rows. Rows older than the
    window are deleted as verifications go."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    at = models.BigIntegerField(help_text="Unix time in microseconds.")

    class Meta:
        indexes = [models.Index(fields=["api_key", "at"], name="apikeys_ratestamp_key_at")]

    def __str__(self) -> str:
        return f"{self.api_key_id} at {self.at}"


# The ranges of a key policy's limits (the contract's "Key policies").
POLICY_MAX_DAYS = 3650
POLICY_MAX_ACTIVE_KEYS = 10000


def _policy_range_constraints(prefix: str) -> list[models.CheckConstraint]:
    ranges = {
        "max_lifetime_days": POLICY_MAX_DAYS,
        "max_active_keys": POLICY_MAX_ACTIVE_KEYS,
        "max_idle_days": POLICY_MAX_DAYS,
    }
    return [
        models.CheckConstraint(
            condition=models.Q(**{f"{name}__isnull": True})
            | models.Q(**{f"{name}__gte": 1, f"{name}__lte": top}),
            name=f"{prefix}_{name}_range",
        )
        for name, top in ranges.items()
    ]


class KeyPolicyFields(models.Model):
    """The three limits of a key policy; ``None`` is no limit."""

    max_lifetime_days = models.PositiveIntegerField(
        "max lifetime (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(POLICY_MAX_DAYS)],
        help_text=(
            f"1 to {POLICY_MAX_DAYS}. A new key expires at most this many days after it is "
            "created (a key created without an expiry gets exactly that). Empty: no limit."
        ),
    )
    max_active_keys = models.PositiveIntegerField(
        "max active keys",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(POLICY_MAX_ACTIVE_KEYS)],
        help_text=(
            f"1 to {POLICY_MAX_ACTIVE_KEYS}. Active (not revoked, not expired) keys one owner "
            "may hold: the organization, or each member for their own keys. Empty: no limit."
        ),
    )
    max_idle_days = models.PositiveIntegerField(
        "max idle (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(POLICY_MAX_DAYS)],
        help_text=(
            f"1 to {POLICY_MAX_DAYS}. A key not verified for this many days (since its "
            "creation if never) is revoked by the scheduled job. Empty: no limit."
        ),
    )
    updated_on = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        abstract = True


class PlatformKeyPolicy(KeyPolicyFields):
    """The platform-wide default key policy: one row (``id`` 1), edited in the admin; it
    applies to every organization without a policy of its own, and to users in none.

    A fresh install has no row; :meth:`load` creates it without limits."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)

    class Meta:
        verbose_name = "API key policy (platform default)"
        verbose_name_plural = "API key policy (platform default)"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(id=1), name="apikeys_platformkeypolicy_singleton"
            ),
            *_policy_range_constraints("apikeys_platformkeypolicy"),
        ]

    def __str__(self) -> str:
        return "API key policy (platform default)"

    @classmethod
    def load(cls) -> PlatformKeyPolicy:
        """The one row, created without limits if it is missing."""
        # get_or_create copes with two first requests racing (as SelfServeSettings.load).
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_ID)
        return obj


class OrganizationKeyPolicy(KeyPolicyFields):
    """An organization's own key policy, in place of the platform default."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="key_policy"
    )

    class Meta:
        verbose_name = "API key policy"
        verbose_name_plural = "API key policies"
        constraints: ClassVar[list[models.BaseConstraint]] = [
            *_policy_range_constraints("apikeys_orgkeypolicy")
        ]

    def __str__(self) -> str:
        return f"API key policy of {self.organization_id}"


# --------------------------------------------------------------------------- webhooks

WEBHOOK_ID_PATTERN = r"^wh_[0-9a-f]{32}$"
WEBHOOK_DELIVERY_ID_PATTERN = r"^whd_[0-9a-f]{32}$"

# The events a webhook may subscribe to (README, "Webhooks").
WEBHOOK_EVENT_TYPES: dict[str, str] = {
    "api_key.created": "A key was issued",
    "api_key.rotated": "A key got a new secret",
    "api_key.revoked": "A key was revoked",
    "api_key.expiring": "A key expires soon (once per key)",
    "api_key.expired": "A key expired (once per key)",
    "api_key.leaked": "A key was reported leaked and revoked",
    "api_key.idle_revoked": "A key unused for too long was revoked",
    "api_key.usage_exceeded": "A key ran out of credits (once per refill period)",
}
# Events recorded at most once per key (a unique constraint, so a race cannot send two).
ONCE_PER_KEY_EVENTS = ("api_key.expiring", "api_key.expired")


def new_webhook_id() -> str:
    return f"wh_{uuid7().hex}"


def new_webhook_event_id() -> str:
    return f"evt_{uuid7().hex}"


def new_webhook_delivery_id() -> str:
    return f"whd_{uuid7().hex}"


class Webhook(models.Model):
    """A platform-wide endpoint that receives the events it subscribes to, signed after the
    Standard Webhooks specification.

    The signing secret is kept sealed (encrypted with a key derived from
    ``APIKEYS["HASHING_SECRET"]``, :func:`apikeys.crypto.seal`): the service must sign with
    it, so it cannot keep a one-way digest, but a copy of the database alone does not give
    it away. ``failing_since`` is the start of the current run of failed attempts;
    ``disabled_on`` is set when that run lasted too long (``WEBHOOK_DISABLE_AFTER_DAYS``).
    """

    id = models.CharField(primary_key=True, max_length=40, default=new_webhook_id, editable=False)
    endpoint_url = models.URLField("endpoint URL", max_length=2000)
    event_types = models.JSONField(default=list, help_text="Event types sent to it.")
    description = models.CharField(max_length=200, blank=True)
    secret_sealed = models.TextField(editable=False)
    created_on = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.CharField(max_length=200, blank=True, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_on = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.endpoint_url

    @property
    def is_enabled(self) -> bool:
        return self.disabled_on is None


class WebhookEvent(models.Model):
    """One event, written in the same transaction as the change it reports (the outbox):
    a change that rolls back leaves none, a committed one is never lost. ``payload`` is the
    body every endpoint receives, built once."""

    id = models.CharField(
        primary_key=True, max_length=40, default=new_webhook_event_id, editable=False
    )
    type = models.CharField(max_length=64)
    api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_events",
    )
    payload = models.JSONField()
    created_on = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "type"],
                condition=models.Q(type__in=ONCE_PER_KEY_EVENTS),
                name="apikeys_webhook_event_once_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class WebhookDelivery(models.Model):
    """One event to one endpoint: pending until a 2xx answer (delivered) or until the
    retry schedule is spent (failed).

    A worker claims an attempt with a conditional UPDATE of ``claimed_until`` (a lease):
    two workers never send one attempt at once, and a worker killed mid-attempt leaves a
    lease that runs out, after which the attempt is sent again (same ``webhook-id``)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    id = models.CharField(
        primary_key=True, max_length=40, default=new_webhook_delivery_id, editable=False
    )
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_on = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_attempt_on = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_response = models.TextField(
        blank=True, help_text="The start of the last answer's body, or why there was none."
    )
    created_on = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_on"], name="apikeys_whd_due"),
            models.Index(fields=["webhook", "id"], name="apikeys_whd_webhook"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} to {self.webhook_id}"


class PeriodicJobRun(models.Model):
    """The claim of one tick of one periodic job (:mod:`apikeys.tasks`): the unique
    (job, tick) pair lets exactly one of several workers run it."""

    job = models.CharField(max_length=100)
    tick = models.BigIntegerField(help_text="Seconds since the epoch // the job's interval.")
    claimed_on = models.DateTimeField(default=timezone.now)
    worker = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "tick"], name="apikeys_periodic_job_tick")
        ]
        indexes = [models.Index(fields=["claimed_on"], name="apikeys_periodic_claimed")]

    def __str__(self) -> str:
        return f"{self.job} #{self.tick}"
