"""The README's Layout section is the tree: every path it names exists, and it lists each module
of src/wgpy under its package, no more and no fewer, so that a new module cannot land without
a line saying where it lives. The README points to docs/ARCHITECTURE.md for the rest."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PATH = re.compile(r"[\w.-]+/([\w.-]+/)*([\w-]+\.\w+)?\Z")


def layout_lines() -> list[str]:
    """The lines of the code block under `## Layout`."""
    section = README.split("\n## Layout\n", 1)[1]
    return [line for line in section.split("```", 2)[1].splitlines() if line.strip()]


def listed() -> tuple[dict[str, set[str]], list[str]]:
    """Module names by package (a `src/wgpy/...` line, then indented lines of names) and every
    path the section starts a line with."""
    packages: dict[str, set[str]] = {}
    paths: list[str] = []
    package = None
    for line in layout_lines():
        if line[0].isspace():
            assert package is not None, f"names outside a package: {line!r}"
            packages[package] |= set(line.split())
            continue
        tokens = line.split()
        for token in tokens:  # leading paths: directories (`x/`) and files (`x/y.md`)
            if not PATH.match(token):
                break
            paths.append(token)
        package = tokens[0] if tokens[0].startswith("src/wgpy/") else None
        if package is not None:
            packages[package] = set()
    return packages, paths


def test_every_path_in_the_layout_exists():
    _, paths = listed()
    assert paths
    assert [path for path in paths if not (ROOT / path).exists()] == []


def test_the_layout_lists_every_module_of_every_package():
    packages, _ = listed()
    actual: dict[str, set[str]] = {}
    for path in (ROOT / "src" / "wgpy").rglob("*.py"):
        if path.name != "__init__.py":
            actual.setdefault(f"{path.parent.relative_to(ROOT)}/", set()).add(path.stem)
    assert packages == actual


def test_the_readme_points_to_the_architecture_in_the_repo():
    assert "docs/ARCHITECTURE.md" in README and (ROOT / "docs" / "ARCHITECTURE.md").exists()
    assert "../shared" not in README
