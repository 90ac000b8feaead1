"""An M2M application can be disabled (``M2MGrant.disabled_at``), and the audit trail names
its disabling, re-enabling and secret regeneration."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('apikeys', '0006_audit_staff_group_and_purge_actions'),
    ]

    operations = [
        migrations.AddField(
            model_name='m2mgrant',
            name='disabled_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('api_key.issued', 'Api Key Issued'), ('api_key.rotated', 'Api Key Rotated'), ('api_key.revoked', 'Api Key Revoked'), ('api.created', 'Api Created'), ('api.deleted', 'Api Deleted'), ('scope.created', 'Scope Created'), ('scope.updated', 'Scope Updated'), ('scope.deleted', 'Scope Deleted'), ('organization.created', 'Organization Created'), ('organization.updated', 'Organization Updated'), ('user.created', 'User Created'), ('membership.added', 'Membership Added'), ('membership.roles_changed', 'Membership Roles Changed'), ('membership.removed', 'Membership Removed'), ('role.created', 'Role Created'), ('role.updated', 'Role Updated'), ('role.permissions_changed', 'Role Permissions Changed'), ('organization.deleted', 'Organization Deleted'), ('user.updated', 'User Updated'), ('user.deleted', 'User Deleted'), ('application.created', 'Application Created'), ('application.updated', 'Application Updated'), ('application.deleted', 'Application Deleted'), ('application.disabled', 'Application Disabled'), ('application.enabled', 'Application Enabled'), ('application.secret_regenerated', 'Application Secret Regenerated'), ('portal_link.created', 'Portal Link Created'), ('portal_link.used', 'Portal Link Used'), ('portal_link.purged', 'Portal Links Purged'), ('self_serve_settings.changed', 'Self Serve Settings Changed'), ('staff_group.created', 'Staff Group Created'), ('staff_group.updated', 'Staff Group Updated'), ('staff_group.deleted', 'Staff Group Deleted')], db_index=True, max_length=64),
        ),
    ]
