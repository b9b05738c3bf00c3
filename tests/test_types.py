"""The type checker over the application's source, as pyproject.toml configures it.

Strict on the engine (tokenscope.lm) and the model service, the default (with the bodies of
unannotated functions checked) elsewhere; the few relaxations are overrides in pyproject.toml,
each with its reason. The second test keeps the strict block from being dropped quietly.
"""

import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the backport mypy itself depends on there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
STRICT_PACKAGES = {"tokenscope.lm.*", "tokenscope.service.*"}
# Every flag of `mypy --strict` that can be set per module (`strict = true` cannot: inside an
# override it turns strict mode on for every module).
STRICT_FLAGS = (
    "disallow_untyped_defs",
    "disallow_incomplete_defs",
    "disallow_untyped_calls",
    "disallow_untyped_decorators",
    "disallow_any_generics",
    "disallow_subclassing_any",
    "warn_return_any",
    "no_implicit_reexport",
    "strict_equality",
    "extra_checks",
)


def _mypy_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]


def test_the_source_type_checks():
    # From the repository root, so that mypy reads pyproject.toml (and keeps its cache there).
    proc = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"


def test_the_engine_and_the_service_stay_strict():
    config = _mypy_config()
    assert config["files"] == ["desktop/tokenscope"]
    assert config["check_untyped_defs"] is True
    overrides = config["overrides"]
    strict = [o for o in overrides if set(o["module"]) == STRICT_PACKAGES]
    assert len(strict) == 1, "pyproject.toml lost the strict override for lm and service"
    missing = [flag for flag in STRICT_FLAGS if strict[0].get(flag) is not True]
    assert not missing, f"the strict override no longer sets {', '.join(missing)}"
    # Relaxations name modules, never a whole strict package, and never silence a module.
    for override in overrides:
        if override is strict[0]:
            continue
        modules = set(override["module"])
        assert not modules & STRICT_PACKAGES, f"a relaxation covers a whole package: {override}"
        assert not override.get("ignore_errors"), f"errors ignored wholesale: {override}"
