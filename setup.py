"""Build hook: ship the top-level ``templates/`` folders inside the packages they serve.

The repository keeps every template in one top-level ``templates/`` folder (the project
finds them through ``TEMPLATES["DIRS"]``), while an installed app must carry its templates
inside its package (found through ``APP_DIRS``). So, when a wheel is built (``pip install .``,
``pip wheel .``, ``python -m build``), ``build_py`` copies:

- ``templates/apikeys/…`` to ``apikeys/templates/apikeys/…``
- ``templates/portal/…`` to ``portal/templates/portal/…``
- ``templates/admin/…`` (admin overrides) to ``apikeys/templates/admin/…``

without moving the source folders. A top-level folder or file under ``templates/`` that is
not mapped in ``TEMPLATE_HOMES`` stops the build with a message, rather than leaving an
installed app without its template. Editable installs (``pip install -e .``, what the
Makefile uses) copy nothing: they import the packages from the repository, whose project
settings already list ``templates/`` in ``DIRS``.

Everything else (name, dependencies, packages, package data) is in ``pyproject.toml``;
``MANIFEST.in`` puts ``templates/`` into source distributions.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import SetupError

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"

# Top-level folder of templates/ -> the package that ships it (under <package>/templates/).
TEMPLATE_HOMES = {
    "apikeys": "apikeys",
    "portal": "portal",
    # Admin overrides serve apikeys' ModelAdmins. Model-specific ones
    # (admin/apikeys/<model>/…) always apply; site-wide ones (admin/base_site.html) apply
    # only where apikeys is listed before django.contrib.admin in INSTALLED_APPS.
    "admin": "apikeys",
}


def _ignored(name: str) -> bool:
    """Editor, OS and Python leftovers that must never reach a package."""
    return name.startswith(".") or name.endswith(("~", ".pyc")) or name == "__pycache__"


def template_copies(build_lib: str) -> list[tuple[Path, Path]]:
    """``(source, destination)`` for every template file to copy into ``build_lib``."""
    if not TEMPLATES.is_dir():
        return []
    copies: list[tuple[Path, Path]] = []
    for entry in sorted(TEMPLATES.iterdir()):
        if _ignored(entry.name):
            continue
        package = TEMPLATE_HOMES.get(entry.name) if entry.is_dir() else None
        if package is None:
            raise SetupError(
                f"templates/{entry.name} belongs to no package: move it under templates/apikeys/ "
                "or templates/portal/, or map it in TEMPLATE_HOMES in setup.py."
            )
        for source in sorted(entry.rglob("*")):
            relative = source.relative_to(TEMPLATES)
            if source.is_file() and not any(_ignored(part) for part in relative.parts):
                copies.append((source, Path(build_lib, package, "templates", relative)))
    return copies


class BuildPyWithTemplates(build_py):
    """``build_py`` that also copies ``templates/`` into the packages (not when editable)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for source, destination in template_copies(self.build_lib):
            self.mkpath(str(destination.parent))
            self.copy_file(str(source), str(destination), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:  # type: ignore[override]
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return outputs + [str(destination) for _, destination in template_copies(self.build_lib)]


setup(cmdclass={"build_py": BuildPyWithTemplates})
