"""Deleting an organization or a user revokes its keys and keeps them (issue 8).

The owner links become ``SET_NULL`` (they were ``PROTECT``, which made an owner with keys
undeletable). The owner is now named by the public code written on the key at issue time,
so the constraints move to those codes: exactly one of ``org_code`` / ``user_public_id``;
a link only of the kind the code names; and no active key without an owner. Keys issued
before this migration already carry both codes, so the new constraints hold for them.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('apikeys', '0004_apikey_lean_indexes_and_fillfactor'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='apikey',
            name='apikeys_apikey_exactly_one_owner',
        ),
        migrations.AlterField(
            model_name='apikey',
            name='organization',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='api_keys', to='apikeys.organization'),
        ),
        migrations.AlterField(
            model_name='apikey',
            name='user',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='api_keys', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddConstraint(
            model_name='apikey',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(models.Q(('org_code', ''), _negated=True), ('user_public_id', '')), models.Q(('org_code', ''), models.Q(('user_public_id', ''), _negated=True)), _connector='OR'), name='apikeys_apikey_exactly_one_owner_code'),
        ),
        migrations.AddConstraint(
            model_name='apikey',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('organization__isnull', True), models.Q(('org_code', ''), _negated=True), _connector='OR'), models.Q(('user__isnull', True), models.Q(('user_public_id', ''), _negated=True), _connector='OR')), name='apikeys_apikey_owner_link_matches_code'),
        ),
        migrations.AddConstraint(
            model_name='apikey',
            constraint=models.CheckConstraint(condition=models.Q(('organization__isnull', False), ('user__isnull', False), ('status', 'revoked'), _connector='OR'), name='apikeys_apikey_ownerless_is_revoked'),
        ),
    ]
