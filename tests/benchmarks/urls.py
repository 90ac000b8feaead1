"""URLs of ``make bench``: the project's URLs, one bare DRF endpoint (the floor), and the
prototype of ``whatif.py``.

The floor lives here, never in ``project/urls.py``: it is not part of the product.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from project.urls import urlpatterns as project_urlpatterns
from tests.benchmarks.whatif import urlpatterns as whatif_urlpatterns


class FloorApi(APIView):
    """A DRF view that does nothing: no authentication, no permission, no query.

    It goes through the same middleware, DRF request wrapping, content negotiation and JSON
    rendering as every other view, so its throughput is the ceiling any endpoint of this
    project can reach on the machine.
    """

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    renderer_classes = [JSONRenderer]
    schema = None

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("bench/floor", FloorApi.as_view(), name="bench-floor"),
    *whatif_urlpatterns,
    *project_urlpatterns,
]
