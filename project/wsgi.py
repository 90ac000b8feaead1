"""WSGI entry point (gunicorn project.wsgi).

A setting that is missing or wrong (say ``SECRET_KEY`` with ``DEBUG`` off) stops the worker
with one clear line and exit status 3, which gunicorn takes as "worker failed to boot" and
stops on, instead of printing a traceback for every worker it retries.

gunicorn's own loggers (its error and access logs) do not go through Django's ``LOGGING``:
the application puts the secret-redacting filter on them when a worker loads it, so no
command line or config file can leave a key in gunicorn's logs.
"""

from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

from apikeys.logging import install_on_gunicorn

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

try:
    application = get_wsgi_application()
except ImproperlyConfigured as error:
    sys.stderr.write(f"Configuration error: {error}\n")
    sys.exit(3)

install_on_gunicorn()
