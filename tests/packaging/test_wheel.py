"""The distribution installs into a Django project that is not this one.

From a copy of the working tree (so that no ``build/`` or ``*.egg-info`` lands in the
repository) these tests build a wheel straight from the tree (what ``pip install .`` does)
and another through an sdist (what ``python -m build`` and PyPI installs do), check what
they ship, install one into a throwaway virtualenv, and run a minimal throwaway project on
it: ``check``, ``migrate``, ``collectstatic``, then pages and API answers through Django's
test client. An editable install (what the Makefile uses) is built and checked too.

Fast and offline: builds use the test environment's hatchling (``--no-build-isolation``,
``--no-index``); the throwaway virtualenv has no pip and sees this environment's
site-packages through a ``.pth`` file, added only *after* the wheel is installed with
``--no-deps``, so that pip never sees (or touches) the editable install of this checkout.
The throwaway project always uses its own SQLite file, whatever ``DATABASE_URL`` says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# Where each top-level folder of templates/ must land inside the installed packages.
TEMPLATE_HOMES = {"portal": "portal", "admin": "apikeys", "apikeys": "apikeys"}

# Planted in the copy of the tree: a template and a static file that must reach the wheel
# and be found by Django's app loaders, whatever the real folders hold today.
PROBE_TEMPLATE = "portal/_packaging_probe.html"
PROBE_STATIC = "portal/_packaging_probe.css"

_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "artifacts", "build", "dist", "*.egg-info", "__pycache__",
    "*.py[cod]", "*.sqlite3", "staticfiles", ".hypothesis", ".pytest_cache", "node_modules",
)  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    """This environment without anything that would point Python or Django back at it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CACHE_URL"}
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def _run(*command: str | Path, cwd: Path, **env: str) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        check=False,  # the assertion below shows the output instead of a bare exit status
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


def _wheel(directory: Path) -> Path:
    (wheel,) = directory.glob("*.whl")
    return wheel


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree with the probe template and static file planted."""
    tree = tmp_path_factory.mktemp("source") / "django-apikeys"
    shutil.copytree(REPO, tree, ignore=_NOT_SOURCE)
    template = tree / "templates" / PROBE_TEMPLATE
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text("packaging probe: {{ value }}\n")
    static = tree / "portal" / "static" / PROBE_STATIC
    static.parent.mkdir(parents=True, exist_ok=True)
    static.write_text("/* packaging probe */\n")
    return tree


@pytest.fixture(scope="module")
def tree_wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip install .`` builds, straight from the tree."""
    out = tmp_path_factory.mktemp("tree-wheel")
    _run(
        PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--quiet", "--wheel-dir", out, source, cwd=source,
    )  # fmt: skip
    return _wheel(out)


@pytest.fixture(scope="module")
def sdist_wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the sdist, as ``python -m build`` and installs from PyPI do."""
    sdists = tmp_path_factory.mktemp("sdist")
    _run(
        PYTHON, "-c", "import sys; from hatchling import build; build.build_sdist(sys.argv[1])",
        sdists, cwd=source,
    )  # fmt: skip
    (archive,) = sdists.glob("*.tar.gz")
    unpacked = tmp_path_factory.mktemp("sdist-unpacked")
    with tarfile.open(archive) as tar:
        # Extraction filters arrived in 3.11.4; Debian's 3.11.2 lacks them (our own archive).
        if hasattr(tarfile, "data_filter"):
            tar.extractall(unpacked, filter="data")
        else:
            tar.extractall(unpacked)
    (sdist_tree,) = unpacked.iterdir()
    out = tmp_path_factory.mktemp("sdist-wheel")
    _run(
        PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--quiet", "--wheel-dir", out, sdist_tree, cwd=sdist_tree,
    )  # fmt: skip
    return _wheel(out)


def _venv_with_this_environment(path: Path, install: list[str | Path]) -> Path:
    """A bare virtualenv with ``install`` pip-installed, then given this environment's
    site-packages (Django, DRF, …) through a ``.pth`` file. Returns its python."""
    _run(PYTHON, "-m", "venv", "--without-pip", path, cwd=path.parent)
    python = path / "bin" / "python"
    _run(
        PYTHON, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--quiet", *install, cwd=path.parent,
    )  # fmt: skip
    site_packages = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=path
        ).strip()
    )
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site_packages / "_this_test_environment.pth").write_text("\n".join(ours) + "\n")
    return python


def test_the_wheel_ships_templates_static_files_and_migrations(tree_wheel: Path):
    names = _names(tree_wheel)

    expected = {f"portal/templates/{PROBE_TEMPLATE}", f"portal/static/{PROBE_STATIC}"}
    for folder, package in TEMPLATE_HOMES.items():
        for path in (REPO / "templates" / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                expected.add(
                    f"{package}/templates/{path.relative_to(REPO / 'templates').as_posix()}"
                )
    for package in ("apikeys", "portal"):
        for migration in (REPO / package / "migrations").glob("*.py"):
            expected.add(f"{package}/migrations/{migration.name}")
        for path in (REPO / package / "static").rglob("*"):
            if path.is_file():
                expected.add(path.relative_to(REPO).as_posix())
    assert "apikeys/migrations/0001_initial.py" in expected
    assert expected <= names, sorted(expected - names)


def test_the_wheel_ships_only_the_two_apps(tree_wheel: Path):
    top_level = {name.split("/", 1)[0] for name in _names(tree_wheel)}

    assert {name for name in top_level if not name.endswith(".dist-info")} == {"apikeys", "portal"}
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in _names(tree_wheel))


def test_a_wheel_built_through_the_sdist_has_the_same_files(tree_wheel: Path, sdist_wheel: Path):
    assert _names(sdist_wheel) == _names(tree_wheel)


def test_building_leaves_nothing_in_the_repository(tree_wheel: Path, sdist_wheel: Path):
    assert not (REPO / "build").exists()
    assert not (REPO / "dist").exists()
    assert not (REPO / "templates" / PROBE_TEMPLATE).exists()


def test_installing_from_a_checkout_leaves_it_clean(tmp_path: Path):
    """Issue 14, item 8: `pip install <checkout>` used to leave build/ (and an egg-info)
    behind, which then failed the test above on the next run. Build the wheel the way pip
    does, from a git clone of this checkout, and ask git what it left."""
    clone = tmp_path / "clone"
    _run("git", "clone", "--quiet", "--no-hardlinks", REPO, clone, cwd=tmp_path)
    _run(
        PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--quiet", "--wheel-dir", tmp_path / "out", clone, cwd=clone,
    )  # fmt: skip
    assert _run("git", "status", "--porcelain", "--ignored", cwd=clone) == ""


def test_every_folder_of_templates_ships_in_a_package():
    """A top-level folder of templates/ that the wheel's force-include does not map would
    leave an installed app without its templates."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapped = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    folders = {p.name for p in (REPO / "templates").iterdir() if p.is_dir()}
    assert {f"templates/{name}" for name in folders} == set(mapped)
    assert {name: mapped[f"templates/{name}"] for name in folders} == {
        name: f"{package}/templates/{name}" for name, package in TEMPLATE_HOMES.items()
    }


THROWAWAY_SETTINGS = """
    from pathlib import Path

    BASE_DIR = Path(__file__).resolve().parent.parent
    SECRET_KEY = "throwaway-project-secret-key-for-the-packaging-test"
    DEBUG = False
    ALLOWED_HOSTS = ["testserver"]
    INSTALLED_APPS = [
        "apikeys.apps.AdminConfig",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.staticfiles",
        "rest_framework",
        "oauth2_provider",
        "apikeys",
        "portal",
    ]
    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]
    ROOT_URLCONF = "hostsite.urls"
    TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],  # the apps must bring their own templates
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ]
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    USE_TZ = True
    STATIC_URL = "static/"
    STATIC_ROOT = BASE_DIR / "staticfiles"
    AUTH_USER_MODEL = "apikeys.User"
    # Exactly the README's "Add to your project" settings: no OAUTH2_PROVIDER_*_MODEL needed.
    OAUTH2_PROVIDER = {
        "SCOPES_BACKEND_CLASS": "apikeys.oauth.GrantedScopes",
        "OAUTH2_VALIDATOR_CLASS": "apikeys.oauth.ManagementOAuth2Validator",
        "CLIENT_SECRET_HASHER": "apikeys_client_hmac",
    }
    PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "apikeys.hashers.ClientSecretHasher",
    ]
    APIKEYS = {"HASHING_SECRET": "throwaway-hashing-secret-of-at-least-32-characters"}
"""

THROWAWAY_URLS = """
    from django.contrib import admin
    from django.urls import include, path

    from apikeys.api.token import ManagementTokenView
    from hostsite.views import UserListApi

    urlpatterns = [
        path("admin/", admin.site.urls),
        path("oauth2/token", ManagementTokenView.as_view()),
        path("api/v1/", include("apikeys.api.urls")),
        path("portal/", include("portal.urls")),
        path("users", UserListApi.as_view()),
    ]
"""

# The README's "ten lines a platform writes", verbatim in spirit.
THROWAWAY_VIEWS = """
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from apikeys.authentication import ApiKeyAuthentication
    from apikeys.permissions import HasScopes


    class UserListApi(APIView):
        authentication_classes = [ApiKeyAuthentication]
        permission_classes = [HasScopes("read:users")]
        api_key_audience = "https://users.host.example"

        def get(self, request):
            return Response({"users": ["ada"], "org_code": request.auth.org_code})
"""

# Runs inside the throwaway environment; prints one JSON object for the test to judge.
PROBE = """
    import json
    import os

    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "hostsite.settings"
    django.setup()

    from django.test.utils import setup_test_environment

    setup_test_environment()  # so that responses list the templates they rendered

    import apikeys
    import portal
    from django.template.loader import get_template
    from django.test import Client
    from django.urls import reverse
    from rest_framework.test import APIClient

    from apikeys import services
    from apikeys.models import SystemPermission

    actor = services.Actor.system()
    api = services.api_create(name="Users", audience="https://users.host.example", actor=actor)
    services.scope_create(api=api, key="read:users", actor=actor)
    organization = services.organization_create(name="Host Org", actor=actor)
    key = services.api_key_issue(
        name="k", api=api, scopes=["read:users"], organization=organization, actor=actor
    ).plaintext

    application = services.m2m_application_create(
        name="verifier", scopes=["verify:api_keys"], actor=actor
    )
    token_response = Client().post(
        "/oauth2/token",
        {
            "grant_type": "client_credentials",
            "client_id": application.application.client_id,
            "client_secret": application.client_secret,
        },
    )
    token = token_response.json().get("access_token", "")
    api_client = APIClient()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    verify = api_client.post("/api/v1/api_keys/verify", {"api_key": key}, format="json")

    admin_login = Client().get("/admin/login/")
    portal_login = Client().get(reverse("portal:login"))
    with_key = APIClient().get("/users", HTTP_AUTHORIZATION=f"Bearer {key}")
    without_key = APIClient().get("/users")
    probe = get_template("portal/_packaging_probe.html")

    print(json.dumps({
        "apikeys_file": apikeys.__file__,
        "portal_file": portal.__file__,
        "system_permissions": sorted(SystemPermission.objects.values_list("key", flat=True)),
        "admin_login": [admin_login.status_code, admin_login.content.decode()],
        "portal_login": [
            portal_login.status_code,
            portal_login.content.decode(),
            [t.origin.name for t in portal_login.templates if t.origin.name],
        ],
        "token": token_response.status_code,
        "verify": [verify.status_code, verify.json()],
        "with_key": [with_key.status_code, with_key.json()],
        "without_key": [without_key.status_code, without_key.json()],
        "probe": [probe.origin.name, probe.render({"value": 42})],
    }))
"""


def _throwaway_project(root: Path) -> Path:
    site = root / "site"
    package = site / "hostsite"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(textwrap.dedent(THROWAWAY_SETTINGS))
    (package / "urls.py").write_text(textwrap.dedent(THROWAWAY_URLS))
    (package / "views.py").write_text(textwrap.dedent(THROWAWAY_VIEWS))
    (site / "probe.py").write_text(textwrap.dedent(PROBE))
    return site


def test_a_fresh_project_installs_migrates_and_serves_the_apps(tree_wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    python = _venv_with_this_environment(venv, [tree_wheel])
    site = _throwaway_project(tmp_path)
    django: list[str | Path] = [python, "-m", "django"]
    settings = {"DJANGO_SETTINGS_MODULE": "hostsite.settings"}

    _run(*django, "check", "--fail-level", "ERROR", cwd=site, **settings)
    _run(*django, "migrate", "--noinput", cwd=site, **settings)
    unapplied = _run(*django, "showmigrations", "--plan", cwd=site, **settings)
    _run(*django, "collectstatic", "--noinput", cwd=site, **settings)
    result = json.loads(_run(python, "probe.py", cwd=site).splitlines()[-1])

    # The apps come from the installed wheel, not from this checkout.
    assert result["apikeys_file"].startswith(str(venv))
    assert result["portal_file"].startswith(str(venv))
    assert "[ ]" not in unapplied
    assert {"read:org:authentication", "write:org:authentication"} <= set(
        result["system_permissions"]
    )
    assert (site / "staticfiles" / PROBE_STATIC).is_file()

    status, html = result["admin_login"]
    assert status == 200 and "csrfmiddlewaretoken" in html

    status, html, templates = result["portal_login"]
    assert status == 200 and "csrfmiddlewaretoken" in html
    assert templates and all(name.startswith(str(venv)) for name in templates)

    assert result["token"] == 200
    status, body = result["verify"]
    assert status == 200
    assert body["code"] == "API_KEY_VERIFIED" and body["is_valid"] is True

    status, body = result["with_key"]
    assert status == 200 and body["users"] == ["ada"]
    status, body = result["without_key"]
    assert status == 401 and body["errors"][0]["code"] == "API_KEY_MISSING"

    origin, rendered = result["probe"]
    assert origin.startswith(str(venv)) and rendered == "packaging probe: 42\n"


def test_an_editable_install_imports_the_packages_from_the_source_tree(
    source: Path, tmp_path: Path
):
    # The PEP 660 hook pip runs for `pip install -e .` (the Makefile's install).
    out = tmp_path / "editable"
    _run(
        PYTHON, "-c", "import sys; from hatchling import build; build.build_editable(sys.argv[1])",
        out, cwd=source,
    )  # fmt: skip
    python = _venv_with_this_environment(tmp_path / "venv", [_wheel(out)])

    located = _run(
        python, "-c", "import apikeys, portal; print(apikeys.__file__); print(portal.__file__)",
        cwd=tmp_path,
    ).split()  # fmt: skip

    assert located == [
        str(source / "apikeys" / "__init__.py"),
        str(source / "portal" / "__init__.py"),
    ]


def readme_snippets() -> list[str]:
    """The Python blocks of the README's "Add to your project" section, dedented: the
    settings, the URLs and the protected view, in that order."""
    import re

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Add to your project", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", section, flags=re.DOTALL | re.MULTILINE)
    return [textwrap.dedent(body) for _indent, body in blocks]


def test_the_readme_snippets_run_verbatim_in_a_startproject_project(
    tree_wheel: Path, tmp_path: Path
):
    """Issue 14, item 7: `django-admin startproject`, the README's settings and URLs appended
    as printed, its protected view as the project's views, then migrate, collectstatic, serve
    under gunicorn, and verify a key through the view. Before, the settings block failed
    (`os` not imported), the URLs block failed (`include` not imported) and collectstatic
    failed (no STATIC_ROOT); and the host's admin was renamed "API keys administration"."""
    import secrets
    import socket
    import time
    import urllib.error
    import urllib.request

    settings_block, urls_block, view_block = readme_snippets()
    python = _venv_with_this_environment(tmp_path / "venv", [tree_wheel])
    site = tmp_path / "site"
    site.mkdir()
    _run(python, "-m", "django", "startproject", "hostsite", site, cwd=tmp_path)
    package = site / "hostsite"
    with (package / "settings.py").open("a") as settings_file:
        settings_file.write("\n" + settings_block)
    (package / "views.py").write_text(view_block)
    with (package / "urls.py").open("a") as urls_file:
        urls_file.write("\n" + urls_block)
        # Wiring the README's view to a path is the one line a host adds of its own.
        urls_file.write("\nfrom hostsite.views import UserListApi\n\n")
        urls_file.write('urlpatterns += [path("users", UserListApi.as_view())]\n')
    env = {"APIKEYS_HASHING_SECRET": secrets.token_urlsafe(40)}
    manage = [python, "manage.py"]
    _run(*manage, "check", "--fail-level", "WARNING", cwd=site, **env)
    _run(*manage, "migrate", "--noinput", cwd=site, **env)
    _run(*manage, "collectstatic", "--noinput", cwd=site, **env)
    issue = (
        "from apikeys import services\n"
        "actor = services.Actor.system()\n"
        "api = services.api_create(name='Users', audience='https://users.example.com', actor=actor)\n"
        "services.scope_create(api=api, key='read:users', actor=actor)\n"
        "org = services.organization_create(name='Host Org', actor=actor)\n"
        "print(services.api_key_issue(name='k', api=api, scopes=['read:users'], "
        "organization=org, actor=actor).plaintext)\n"
    )
    key = _run(*manage, "shell", "-c", issue, cwd=site, **env).strip().splitlines()[-1]
    assert key.startswith("k_live_")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(python), "-m", "gunicorn", "hostsite.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "1"],
        cwd=site, env=_env(**env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def get(path: str, **headers: str) -> tuple[int, str]:
        request = urllib.request.Request(base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, admin_page = get("/admin/login/")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    "gunicorn did not start"
                )
                time.sleep(0.3)
        with_key = get("/users", Authorization=f"Bearer {key}")
        without_key = get("/users")
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert status == 200
    assert "Django administration" in admin_page  # the host's own branding, untouched
    assert "API keys administration" not in admin_page
    assert with_key[0] == 200 and json.loads(with_key[1])["users"] == []
    assert without_key[0] == 401
    assert json.loads(without_key[1])["errors"][0]["code"] == "API_KEY_MISSING"
    assert (site / "staticfiles" / "admin").is_dir()
