"""Settings of the demo/production project, all read from the environment.

Every variable is documented in README.md ("Configuration"). The defaults give a local
run that needs nothing installed (SQLite file, local-memory cache); with ``DEBUG`` off,
the secrets must be given or start-up stops with a clear message.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

# Only a local debug run may fall back to throwaway secrets; they are marked as such.
_DEV_SECRET = "insecure-dev-only-secret-do-not-use-in-production"


def _secret(name: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return f"{_DEV_SECRET}-{name.lower()}"
    raise ImproperlyConfigured(
        f"{name} is not set. With DEBUG off it is required: set {name} in the environment "
        "to a long random value (for example: python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))')."
    )


SECRET_KEY = _secret("SECRET_KEY")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # django.contrib.admin with the portal-safe site (apikeys.admin_site) and our branding.
    "project.apps.PlatformAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "oauth2_provider",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apikeys",
    "portal",
    # Background work (README, "Background work"): Django's tasks framework (the django-tasks
    # backport) with its database backend. After apikeys, whose db_worker command (the
    # worker with the periodic jobs' scheduler) takes the place of django_tasks_db's.
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    # First, before SecurityMiddleware (which reads the host for its SSL redirect): a Host
    # outside ALLOWED_HOSTS gets JSON from the Management API and the token endpoint.
    "apikeys.middleware.DisallowedHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files served by the app itself (admin, portal, API docs): compressed, with
    # content-hashed names cached for a year, so gunicorn alone serves a styled site.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apikeys.middleware.RejectNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The apps' templates (setup.py ships them inside the packages), then the project's own.
        "DIRS": [BASE_DIR / "templates", BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: write-ahead logging lets readers and a writer work at once, and
    # in WAL mode synchronous=NORMAL is safe from corruption while sparing an fsync per
    # commit (a power cut may lose the last commits, not the database).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The key verification is sent with server-side binding; allowing prepared statements
    # lets PostgreSQL plan it once per connection instead of on every call (about a third
    # of a verification's cost). Empty: off, for a transaction-mode pooler that cannot
    # follow prepared statements (PgBouncer before 1.21).
    _prepare = env.str("DATABASE_PREPARE_THRESHOLD", default="5")
    if _prepare and not _prepare.isdigit():
        raise ImproperlyConfigured("DATABASE_PREPARE_THRESHOLD must be a whole number or empty.")
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        int(_prepare) if _prepare else None
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

AUTH_USER_MODEL = "apikeys.User"
# django-oauth-toolkit's default models, named so that swappable references resolve.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER = {
    "SCOPES_BACKEND_CLASS": "apikeys.oauth.GrantedScopes",
    # Disabled applications and narrowed grants apply to tokens already issued; client
    # secrets (random, like API keys) are stored with a keyed digest, not a password hash.
    "OAUTH2_VALIDATOR_CLASS": "apikeys.oauth.ManagementOAuth2Validator",
    "CLIENT_SECRET_HASHER": "apikeys_client_hmac",
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("M2M_TOKEN_LIFETIME", default=3600),
    # RFC 9700 (OAuth 2.0 Security BCP), which `check --deploy` asks for: access tokens are
    # stored hashed and refused in a URL's query string; the grants and redirect rules
    # below concern flows this service does not offer (only client credentials).
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
}
# Argon2 first: every new or upgraded password is hashed with it.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    # M2M client secrets only (OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"]); never first.
    "apikeys.hashers.ClientSecretHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One date and time format everywhere (project/formats/en/formats.py).
FORMAT_MODULE_PATH = ["project.formats"]

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# collectstatic writes content-hashed, gzip-compressed copies and a manifest;
# WhiteNoise serves them (with DEBUG on it serves the apps' files directly, unhashed).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Behind a TLS-terminating proxy (see README, "Deploy").
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("TRUST_X_FORWARDED_PROTO", default=False)
    else None
)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Strict JSON: NaN and Infinity are not JSON.
    "STRICT_JSON": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "API keys Management API",
    "DESCRIPTION": (
        "Issue, list, rotate, revoke and verify API keys; manage APIs, scopes, organizations, "
        "users and roles. Authenticate with an OAuth 2.0 client-credentials token from "
        "/oauth2/token."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "OAUTH2_FLOWS": ["clientCredentials"],
    "OAUTH2_TOKEN_URL": "/oauth2/token",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

APIKEYS = {
    "HASHING_SECRET": _secret("APIKEYS_HASHING_SECRET"),
    "TRUST_X_FORWARDED_FOR": env.bool("APIKEYS_TRUST_X_FORWARDED_FOR", default=False),
    "VERIFY_FAILURE_LIMIT": env.int("APIKEYS_VERIFY_FAILURE_LIMIT", default=300),
    "VERIFY_FAILURE_WINDOW": env.int("APIKEYS_VERIFY_FAILURE_WINDOW", default=60),
    "RATELIMIT_STORAGE": env.str("APIKEYS_RATELIMIT_STORAGE", default=""),
    "TOKEN_FAILURE_LIMIT": env.int("APIKEYS_TOKEN_FAILURE_LIMIT", default=10),
    "TOKEN_FAILURE_LIMIT_PER_IP": env.int("APIKEYS_TOKEN_FAILURE_LIMIT_PER_IP", default=50),
    "TOKEN_FAILURE_WINDOW": env.int("APIKEYS_TOKEN_FAILURE_WINDOW", default=60),
    "AUTHENTICATION_FAILURE_LIMIT": env.int("APIKEYS_AUTHENTICATION_FAILURE_LIMIT", default=300),
    "AUTHENTICATION_FAILURE_WINDOW": env.int("APIKEYS_AUTHENTICATION_FAILURE_WINDOW", default=60),
    "MANAGEMENT_API_AUDIENCE": env.str("APIKEYS_MANAGEMENT_API_AUDIENCE", default="") or None,
    # With Redis as CACHE_URL: how long a worker keeps a checked M2M token (0: no cache).
    "M2M_TOKEN_CACHE_SECONDS": env.int("APIKEYS_M2M_TOKEN_CACHE_SECONDS", default=60),
}

# Background work: TASKS_BACKEND=database (default: tasks in the project's database, run by
# `manage.py db_worker`) or rq (tasks in Redis at RQ_URL, run by RQ workers:
# `manage.py rqworker --job-class django_tasks_rq.Job default`, plus `manage.py
# apikeys_scheduler` for the periodic jobs). "immediate" runs each task in the caller.
TASKS_BACKEND = env.str("TASKS_BACKEND", default="database")
if TASKS_BACKEND == "database":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
elif TASKS_BACKEND == "rq":
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    RQ_QUEUES = {"default": {"URL": env.str("RQ_URL", default="redis://127.0.0.1:6379/0")}}
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
elif TASKS_BACKEND == "immediate":
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
else:
    raise ImproperlyConfigured("TASKS_BACKEND must be database, rq or immediate.")

# Webhooks (README, "Webhooks"): private, loopback and link-local endpoints are refused
# unless this is true (development and tests).
APIKEYS["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] = env.bool(
    "APIKEYS_WEBHOOKS_ALLOW_PRIVATE_TARGETS", default=False
)

# The self-serve portal's APIKEYS knobs, taken from the environment only when given there
# (their defaults live in apikeys/conf.py): APIKEYS_PORTAL_RETURN_URL_HOSTS (comma-separated),
# APIKEYS_PORTAL_PUBLIC_URL, APIKEYS_PORTAL_PLATFORM_NAME, APIKEYS_PORTAL_LOGIN_MAX_FAILURES,
# APIKEYS_PORTAL_LOGIN_MAX_FAILURES_PER_IP, APIKEYS_PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT,
# APIKEYS_PORTAL_LOGIN_LOCKOUT_SECONDS.
_PORTAL_ENV = {
    "PORTAL_RETURN_URL_HOSTS": env.list,
    "PORTAL_PUBLIC_URL": env.str,
    "PORTAL_PLATFORM_NAME": env.str,
    "PORTAL_LOGIN_MAX_FAILURES": env.int,
    "PORTAL_LOGIN_MAX_FAILURES_PER_IP": env.int,
    "PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT": env.int,
    "PORTAL_LOGIN_LOCKOUT_SECONDS": env.int,
    "COUNTS_WRITE_BACK_INTERVAL": env.float,
    "COUNTS_WRITE_BACK_THREAD": env.bool,
    "USAGE_RETENTION_DAYS": env.int,
    "WEBHOOK_TIMEOUT_SECONDS": env.int,
    "WEBHOOK_RETRY_SCHEDULE": lambda name: [int(v) for v in env.list(name)],
    "WEBHOOK_DISABLE_AFTER_DAYS": env.int,
    "WEBHOOK_CLAIM_SECONDS": env.int,
    "API_KEY_EXPIRING_DAYS": env.int,
}
APIKEYS.update(
    {
        name: cast(f"APIKEYS_{name}")
        for name, cast in _PORTAL_ENV.items()
        if f"APIKEYS_{name}" in env.ENVIRON
    }
)


def _json_setting(name: str, default: object) -> object:
    """A JSON value from the environment; one that is not JSON is kept as its text, so that
    the system checks refuse it with a message naming the setting (not a traceback)."""
    if name not in env.ENVIRON:
        return default
    try:
        return env.json(name)
    except ValueError:
        return env.str(name)


# GitHub secret scanning's public keys, a JSON object {key identifier: PEM} (README, "Leaked
# keys"); checked at start-up (apikeys.E401/E402). Unset: the GitHub leak-report door is shut.
APIKEYS["SECRET_SCANNING_PUBLIC_KEYS"] = _json_setting("APIKEYS_SECRET_SCANNING_PUBLIC_KEYS", {})

# Every handler redacts keys and secrets (apikeys/logging.py; gunicorn's loggers get the same
# filter in project/wsgi.py). Django's own "django" handler is dropped: its records reach the
# root's console once, instead of twice under DEBUG. runserver's request lines keep their
# handler and format, filtered too.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "apikeys.logging.RedactSecretsFilter"}},
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_secrets"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact_secrets"],
        },
    },
    "loggers": {
        "django": {"handlers": [], "level": "INFO"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
