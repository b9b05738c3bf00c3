"""The installed package: every source package listed, the resources found."""

from importlib import resources
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_source_package_is_listed_in_pyproject():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    source = ROOT / "desktop"
    found = {
        ".".join(p.parent.relative_to(source).parts)
        for p in source.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found | {"tokenscope.resources"} == listed


def test_resources_are_found_where_the_package_is_installed():
    readme = resources.files("tokenscope.resources") / "README.md"
    assert readme.is_file()
    assert "bundled" in readme.read_text(encoding="utf-8")
