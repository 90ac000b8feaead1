"""Leaked-key reports in and out: the platform's own door and GitHub's secret scanning."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apikeys.api.serializers._base import StrictCharField, StrictSerializer
from apikeys.services.leaks import MAX_SOURCE_LENGTH as MAX_LEAK_SOURCE_LENGTH
from apikeys.services.leaks import MAX_URL_LENGTH as MAX_LEAK_URL_LENGTH

LEAK_LABELS = ["true_positive", "false_positive"]

# ``source`` and ``label`` are the contract's field names and also attributes of DRF's Field
# (the serializer's metaclass moves declared fields aside, so they work; the stubs object).


class LeakReportIn(StrictSerializer):
    # Not trimmed: a key with a space around it is not the key (verify does not trim either).
    api_key = StrictCharField(trim_whitespace=False, max_length=1000)
    url = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=MAX_LEAK_URL_LENGTH,
        help_text="Where the key was seen.",
    )
    source = StrictCharField(  # type: ignore[assignment]
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=MAX_LEAK_SOURCE_LENGTH,
        help_text="Who or what found it (a scanner's name, a channel).",
    )


class LeakReportOut(serializers.Serializer[Any]):
    code = serializers.CharField()
    message = serializers.CharField()
    label = serializers.ChoiceField(  # type: ignore[assignment]
        choices=LEAK_LABELS,
        help_text="true_positive: the key was live and is now revoked. false_positive: "
        "anything else (nothing changed).",
    )


class GitHubReportedTokenIn(serializers.Serializer[Any]):
    """One match of GitHub's secret scanning. Not strict about fields GitHub may add later
    (a refused batch would lose the reports in it): those are ignored."""

    token = StrictCharField(trim_whitespace=False, max_length=1000)
    type = StrictCharField(trim_whitespace=False, max_length=128)
    url = StrictCharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
    source = StrictCharField(  # type: ignore[assignment]
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )


class GitHubTokenLabelOut(serializers.Serializer[Any]):
    token_hash = serializers.CharField(help_text="SHA-256 of the token, in hex.")
    token_type = serializers.CharField()
    label = serializers.ChoiceField(choices=LEAK_LABELS)  # type: ignore[assignment]
