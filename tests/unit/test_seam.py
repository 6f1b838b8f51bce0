"""The provider seam holds: syncd names no provider, and no provider needs syncd.

Read from the source (the AST of every module), not by importing: a lazy
import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import providers

ROOT = Path(__file__).resolve().parents[2]
#: What talks to one calendar system's servers: only its plugin may import these.
PROVIDER_LIBRARIES = (
    "googleapiclient",
    "google",
    "google_auth_oauthlib",
    "oauthlib",
    "requests_oauthlib",
    "msal",
    "caldav",
    "icalendar",
    "recurring_ical_events",
    "x_wr_timezone",
)
#: The seam: what syncd may import from providers/.
SEAM = (
    "providers",
    "providers.base",
    "providers.body",
    "providers.model",
    "providers.options",
    "providers.signin",
)
#: ``syncd demo`` runs on the bundled emulators; it reaches them through this one module.
DEMO = {"syncd/demo.py": ("providers.emulators.demo_org",)}


def imports(path: Path) -> Iterator[str]:
    """Every module a file imports: ``from providers import google`` imports providers.google.

    ``from M import name`` is reported as ``M.name`` when that is a module
    (a file or package under the source tree), else as ``M``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                yield dotted if is_module(dotted) else node.module


def is_module(dotted: str) -> bool:
    """Whether a dotted name is a module: ours by its file, a library's by a dot-free guess."""
    base = ROOT.joinpath(*dotted.split("."))
    if dotted.split(".", 1)[0] in ("syncd", "providers", "tests"):
        return base.with_suffix(".py").exists() or (base / "__init__.py").exists()
    return False


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def within(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


@pytest.mark.parametrize("path", modules("syncd"), ids=lambda p: str(p.relative_to(ROOT)))
def test_syncd_imports_no_provider_library_and_no_provider_module(path: Path) -> None:
    allowed = (*SEAM, *DEMO.get(str(path.relative_to(ROOT)), ()))
    for name in imports(path):
        assert not any(within(name, library) for library in PROVIDER_LIBRARIES), name
        if within(name, "providers"):
            assert name in allowed, f"{path.name} imports {name}"


@pytest.mark.parametrize(
    "path",
    [p for p in modules("providers") if "emulators" not in p.parts],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_provider_imports_syncd(path: Path) -> None:
    assert not [name for name in imports(path) if within(name, "syncd")]


@pytest.mark.parametrize("name", ["base", "body", "model", "options", "signin", "__init__"])
def test_the_seam_itself_imports_no_provider_library(name: str) -> None:
    found = list(imports(ROOT / "providers" / f"{name}.py"))
    assert not [n for n in found if any(within(n, lib) for lib in PROVIDER_LIBRARIES)]


def test_the_checks_above_would_see_a_violation(tmp_path: Path) -> None:
    """A check that cannot fail proves nothing: a module importing msal lazily is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def tokens():\n    import msal\n    from providers import google\n"
        "from providers.microsoft.graph import error_for\nimport providers.memory\n",
        encoding="utf-8",
    )
    found = set(imports(bad))
    assert found == {"msal", "providers.google", "providers.microsoft.graph", "providers.memory"}


def test_every_registered_plugin_is_a_plugin() -> None:
    for name in providers.NAMES:
        plugin = providers.plugin(name)
        assert plugin.name == name
        assert isinstance(plugin.webhook_limit, int)
    with pytest.raises(providers.UnknownProvider):
        providers.plugin("exchange2003")
