"""WSGI entry point (gunicorn project.wsgi).

gunicorn's own loggers (its error and access logs) do not go through Django's ``LOGGING``:
the application puts the secret-redacting filter on them when a worker loads it, so no
command line or config file can leave a key in gunicorn's logs.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from apikeys.logging import install_on_gunicorn

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

application = get_wsgi_application()

install_on_gunicorn()
