"""The system permissions the portal understands, present after ``migrate``."""

from __future__ import annotations

from django.db import migrations

PERMISSIONS = {
    "read:org:authentication": "See the organization's API keys in the self-serve portal.",
    "write:org:authentication": "Create, rotate and revoke the organization's API keys.",
}


def create_permissions(apps, schema_editor):
    SystemPermission = apps.get_model("apikeys", "SystemPermission")
    for key, description in PERMISSIONS.items():
        SystemPermission.objects.update_or_create(key=key, defaults={"description": description})


class Migration(migrations.Migration):
    dependencies = [("apikeys", "0002_application_links")]

    operations = [migrations.RunPython(create_permissions, migrations.RunPython.noop)]
