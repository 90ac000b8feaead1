"""This project's admin site: the apps' portal-safe site with the project's own branding
(branding belongs to the project, not to the apps a host project installs)."""

from __future__ import annotations

from apikeys.admin_site import PortalSafeAdminSite


class PlatformAdminSite(PortalSafeAdminSite):
    site_header = "API keys administration"
    site_title = "API keys admin"
    index_title = "Platform administration"
    # One way to show an empty value, the portal's.
    empty_value_display = "—"
    # The model sidebar took 300 of 1,280 pixels from every list (the key list lost its
    # date and count columns to it); the index and the breadcrumbs lead everywhere it did.
    enable_nav_sidebar = False
