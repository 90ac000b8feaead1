"""The two doors of leaked-key reports; both judge each key with ``api_key_leak_report``.

- ``POST /api/v1/api_keys/leaks``: a platform's own scanner, with an M2M token carrying
  ``report:api_key_leaks``. Strict input like every Management API body.
- ``POST /api/v1/secret_scanning/github``: GitHub's secret-scanning partner protocol. GitHub
  holds no token of ours: the ECDSA P-256 signature over the raw body
  (``Github-Public-Key-Signature``, by the key ``Github-Public-Key-Identifier`` names, one of
  ``APIKEYS["SECRET_SCANNING_PUBLIC_KEYS"]``) is the authentication. It is checked before
  the body is parsed: an unsigned request learns nothing, not even whether its body would
  have been valid, and changes nothing. The answer names each token only by its SHA-256.

Neither door echoes a key or says whose it was; no key or token is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys import conf, crypto, services
from apikeys.api import serializers as s
from apikeys.api.base import ManagementApiView
from apikeys.api.errors import ApiError, bad_request
from apikeys.http import client_ip
from apikeys.services.leaks import MAX_SOURCE_LENGTH, MAX_URL_LENGTH

logger = logging.getLogger("apikeys.api")

ERRORS = {
    400: s.ErrorOut,
    401: s.ErrorOut,
    403: s.ErrorOut,
    411: s.ErrorOut,
    413: s.ErrorOut,
    415: s.ErrorOut,
}

REPORT_MESSAGE = "Leak report received"

#: Most tokens one GitHub report may carry. GitHub batches the matches it finds; a batch of
#: this many minimal matches is about 50 KiB, under the 64 KiB body limit every request has.
MAX_GITHUB_BATCH = 500

GITHUB_ACTOR_NAME = "GitHub secret scanning"
IDENTIFIER_HEADER = "Github-Public-Key-Identifier"
SIGNATURE_HEADER = "Github-Public-Key-Signature"


class ApiKeyLeaksApi(ManagementApiView):
    """Report that an API key was seen where it should not be. A key that is live (the
    current secret of an active key, or its previous secret still inside a rotation grace
    period) is revoked at once and the answer is `true_positive`; anything else (malformed,
    unknown, already revoked, expired) is `false_positive` and changes nothing. The answer
    never says whose key it was."""

    required_scopes = {"POST": ["report:api_key_leaks"]}

    @extend_schema(
        operation_id="report_api_key_leak",
        request=s.LeakReportIn,
        responses={200: s.LeakReportOut, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = s.LeakReportIn(data=self.body())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        report = services.api_key_leak_report(
            key=data["api_key"],
            url=data.get("url") or None,
            source=data.get("source") or None,
            actor=self.actor(),
        )
        _log(report, door="api")
        return Response({"code": "OK", "message": REPORT_MESSAGE, "label": report.label})


class HasGitHubSignature(BasePermission):
    """The raw body carries a valid signature by one of GitHub's configured public keys.

    Every failure is a 401 and is decided before the body is parsed."""

    def has_permission(self, request: Request, view: Any) -> bool:
        identifier = request.headers.get(IDENTIFIER_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not identifier or not signature:
            raise _unauthorized(
                "UNAUTHENTICATED",
                f"A report must be signed: {IDENTIFIER_HEADER} and {SIGNATURE_HEADER}.",
            )
        keys = conf.get("SECRET_SCANNING_PUBLIC_KEYS")
        # A malformed setting is refused at start-up (apikeys.E401); here it shuts the door.
        pem = keys.get(identifier) if isinstance(keys, Mapping) else None
        if not isinstance(pem, str):
            pem = None
        # The raw bytes as they came, before any parsing: the signature is over them.
        body = request._request.body
        if pem is None or not crypto.p256_signature_valid(
            public_key_pem=pem, signature_base64=signature, message=body
        ):
            logger.info(
                "GitHub leak report refused: %s",
                "unknown public key identifier" if pem is None else "invalid signature",
            )
            raise _unauthorized("INVALID_SIGNATURE", "The report's signature is not valid.")
        return True


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(status=HTTPStatus.UNAUTHORIZED, code=code, message=message)


_SIGNATURE_HEADERS = [
    OpenApiParameter(
        IDENTIFIER_HEADER,
        str,
        location=OpenApiParameter.HEADER,
        required=True,
        description="Which of GitHub's secret-scanning public keys signed the body.",
    ),
    OpenApiParameter(
        SIGNATURE_HEADER,
        str,
        location=OpenApiParameter.HEADER,
        required=True,
        description="Base64 of the ASN.1/DER ECDSA P-256 SHA-256 signature of the raw body.",
    ),
]


class GitHubSecretScanningApi(ManagementApiView):
    """GitHub's secret-scanning partner protocol: a JSON array of matches
    (`token`, `type`, `url`, `source`) found in public on GitHub, signed by GitHub. Each
    token is judged like a leak report (a live key is revoked at once) and answered, in
    the same order, by its SHA-256 (`token_hash`), its `token_type` and its `label`.

    Authentication: no token; the ECDSA P-256 signature of the raw body by one of GitHub's
    public keys (configured in `APIKEYS_SECRET_SCANNING_PUBLIC_KEYS`). A missing or bad
    signature is 401 and changes nothing. At most 500 matches per request (413
    `BATCH_TOO_LARGE` past it)."""

    authentication_classes: list[Any] = []
    permission_classes = [HasGitHubSignature]

    @extend_schema(
        operation_id="report_github_secret_scanning_matches",
        parameters=_SIGNATURE_HEADERS,
        request=s.GitHubReportedTokenIn(many=True),
        responses={
            200: s.GitHubTokenLabelOut(many=True),
            **{status: body for status, body in ERRORS.items() if status != HTTPStatus.FORBIDDEN},
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, list):
            raise bad_request("INVALID_REQUEST", "The body must be a JSON array of matches.")
        if len(data) > MAX_GITHUB_BATCH:
            raise ApiError(
                status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                code="BATCH_TOO_LARGE",
                message=f"A report may carry at most {MAX_GITHUB_BATCH} matches.",
            )
        # Every match is checked before any is judged: a refused batch changes nothing.
        serializer = s.GitHubReportedTokenIn(data=data, many=True)
        serializer.is_valid(raise_exception=True)
        actor = services.Actor(name=GITHUB_ACTOR_NAME, ip=client_ip(request))
        labels: dict[str, str] = {}
        answer = []
        for match in serializer.validated_data:
            token = match["token"]
            if token not in labels:
                report = services.api_key_leak_report(
                    key=token,
                    url=_clipped(match.get("url"), MAX_URL_LENGTH),
                    source=_clipped(match.get("source"), MAX_SOURCE_LENGTH),
                    actor=actor,
                )
                _log(report, door="github")
                # The same token twice in one batch (found in two places) is one leak: the
                # second sighting must not read as a false positive because the first one
                # revoked the key.
                labels[token] = report.label
            answer.append(
                {
                    "token_hash": crypto.sha256_hex(token),
                    "token_type": match["type"],
                    "label": labels[token],
                }
            )
        return Response(answer)


def _clipped(value: str | None, limit: int) -> str | None:
    # GitHub's URL or source is kept for the audit trail, cut to the length it holds: a
    # report is never refused for a long URL (the revocation matters more than its detail).
    return value[:limit] if value else None


def _log(report: services.LeakReport, *, door: str) -> None:
    if report.is_true_positive:
        logger.warning("API key %s revoked: reported leaked (%s)", report.key_id, door)
