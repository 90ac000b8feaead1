"""Why a portal link did not sign anyone in.

Each has a stable ``code`` like the domain errors in ``apikeys.exceptions``; the sign-in page
turns them into a message. None of them says anything about the link's user.
"""

from __future__ import annotations

from apikeys.exceptions import ApiKeysError


class PortalLinkError(ApiKeysError):
    """A portal link that cannot be used."""

    code = "PORTAL_LINK_INVALID"
    default_message = "This sign-in link is not valid."


class PortalLinkInvalid(PortalLinkError):
    """Unknown, malformed or tampered with (or its user can no longer sign in)."""

    code = "PORTAL_LINK_INVALID"
    default_message = (
        "This sign-in link is not valid. Check that you copied all of it, or ask the app "
        "for a new one."
    )


class PortalLinkUsed(PortalLinkError):
    """Already used once: a link signs in only one time."""

    code = "PORTAL_LINK_USED"
    default_message = (
        "This sign-in link has already been used. Links work only once: open the portal "
        "again from your app to get a new one, or sign in below."
    )


class PortalLinkExpired(PortalLinkError):
    """Past its lifetime."""

    code = "PORTAL_LINK_EXPIRED"
    default_message = (
        "This sign-in link has expired. Open the portal again from your app to get a new "
        "one, or sign in below."
    )
