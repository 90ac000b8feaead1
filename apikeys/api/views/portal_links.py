"""Portal links: a one-time URL that signs a user in to the self-service portal.

Rules:

- The only module of the API that reaches into ``portal``: ``portal.services`` is imported
  inside the view, so that importing the API never imports the portal.
- The URL signs its user in: it is sent with ``Cache-Control: no-store``.
"""

from __future__ import annotations

from http import HTTPStatus

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys.api import serializers as s
from apikeys.api.base import ManagementApiView
from apikeys.api.views._common import (
    ERRORS,
    secret_response,
    validated,
)


class PortalLinkApi(ManagementApiView):
    required_scopes = {"POST": ["create:portal_links"]}

    @extend_schema(
        operation_id="generate_portal_url",
        request=s.PortalLinkIn,
        responses={200: inline_serializer("PortalUrl", {"url": serializers.CharField()}), **ERRORS},
    )
    def post(self, request: Request) -> Response:
        from portal.services import portal_base_url, portal_link_create

        data = validated(s.PortalLinkIn, self.body())
        url = portal_link_create(
            user=data["user"],
            organization=data["organization"],
            return_url=data.get("return_url") or None,
            sub_nav=data.get("sub_nav") or None,
            base_url=portal_base_url(request),
            actor=self.actor(),
        )
        # The URL signs its user in: no cache may keep it.
        return secret_response({"url": url}, HTTPStatus.OK)
