"""This project's admin site: the apps' portal-safe site with the project's own branding
(branding belongs to the project, not to the apps a host project installs)."""

from __future__ import annotations

from apikeys.admin_site import PortalSafeAdminSite


class PlatformAdminSite(PortalSafeAdminSite):
    site_header = "API keys administration"
    site_title = "API keys admin"
    index_title = "Platform administration"
