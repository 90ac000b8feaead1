"""The portal's own data: the self-serve switches and one-time portal links.

Like the apikeys models, these hold fields and constraints only; every write goes through
``portal.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from apikeys.models import Organization

# A one-time sign-in link should be used within minutes: long enough to survive a slow
# redirect chain or an email client, short enough that a leaked link is soon worthless.
MIN_LINK_LIFETIME_SECONDS = 30
MAX_LINK_LIFETIME_SECONDS = 3600
DEFAULT_LINK_LIFETIME_SECONDS = 300


class SelfServeSettings(models.Model):
    """The platform's self-serve switches: one row (``id`` 1), edited in the admin.

    A fresh install has no row; :meth:`load` creates it with both kinds of keys switched
    on, so a new platform sees the portal work at once (the contract's "Self-serve
    switches").
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    user_keys_enabled = models.BooleanField(
        "self-serve keys for users",
        default=True,
        help_text="Signed-in users can see, create, rotate and revoke their own keys.",
    )
    organization_keys_enabled = models.BooleanField(
        "self-serve keys for organizations",
        default=True,
        help_text=(
            "Members whose role grants read:org:authentication see their organization's "
            "keys; write:org:authentication also lets them create, rotate and revoke them."
        ),
    )
    portal_link_lifetime_seconds = models.PositiveIntegerField(
        "portal link lifetime (seconds)",
        default=DEFAULT_LINK_LIFETIME_SECONDS,
        validators=[
            MinValueValidator(MIN_LINK_LIFETIME_SECONDS),
            MaxValueValidator(MAX_LINK_LIFETIME_SECONDS),
        ],
        help_text=(
            f"How long a one-time portal link stays valid, {MIN_LINK_LIFETIME_SECONDS} to "
            f"{MAX_LINK_LIFETIME_SECONDS} seconds."
        ),
    )
    updated_on = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "self-serve settings"
        verbose_name_plural = "self-serve settings"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(id=1), name="portal_selfservesettings_singleton"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    portal_link_lifetime_seconds__gte=MIN_LINK_LIFETIME_SECONDS,
                    portal_link_lifetime_seconds__lte=MAX_LINK_LIFETIME_SECONDS,
                ),
                name="portal_selfservesettings_link_lifetime_range",
            ),
        ]

    def __str__(self) -> str:
        return "Self-serve settings"

    @classmethod
    def load(cls) -> SelfServeSettings:
        """The one row, created with the defaults (both switches on) if it is missing."""
        # get_or_create copes with two first requests racing: the loser's INSERT fails on
        # the primary key and it reads the winner's row.
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_ID)
        return obj

    @property
    def any_enabled(self) -> bool:
        return self.user_keys_enabled or self.organization_keys_enabled


class PortalLink(models.Model):
    """A one-time link that signs ``user`` into the portal.

    Only the SHA-256 digest of the link's token is stored: the token itself exists in the
    URL handed to the platform and nowhere else, so a database dump cannot sign anyone in.
    ``used_at`` is set exactly once, by a conditional UPDATE (see
    :func:`portal.services.portal_link_redeem`).
    """

    class SubNav(models.TextChoices):
        API_KEYS = "api_keys", "API keys (the user's)"
        USER_API_KEYS = "user_api_keys", "User API keys"
        ORGANIZATION_API_KEYS = "organization_api_keys", "Organization API keys"

    digest = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_links"
    )
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="portal_links",
    )
    sub_nav = models.CharField(max_length=32, choices=SubNav.choices)
    return_url = models.CharField(max_length=2048, blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    created_on = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "portal link"
        ordering = ["-created_on", "-id"]
        # For clearportallinks, which deletes the links that expired long ago.
        indexes = [models.Index(fields=["expires_at"], name="portal_link_expires_at")]

    def __str__(self) -> str:
        # Never the digest: it is what a link is looked up by.
        return f"Portal link #{self.pk} for {self.user_id}"

    @property
    def state(self) -> str:
        """``used``, ``expired`` or ``unused``: what the admin lists."""
        if self.used_at is not None:
            return "used"
        if self.expires_at <= timezone.now():
            return "expired"
        return "unused"
