"""An index on ``PortalLink.expires_at`` for ``clearportallinks``, which deletes the links
that expired long ago."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('portal', '0001_initial'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='portallink',
            index=models.Index(fields=['expires_at'], name='portal_link_expires_at'),
        ),
    ]
