"""DESIGN rules: the engine, training and the service are Qt-free; importing is cheap.

The rules are import-linter contracts in pyproject.toml, checked here statically; the fresh
interpreters below check what actually gets loaded at run time.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

QT_PREFIXES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "tokenscope.gui")


def _fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    assert lint, "import-linter is part of the test extras"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([lint], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = (root / "pyproject.toml").read_text(encoding="utf-8")
    contracts = config.count("[[tool.importlinter.contracts]]")
    assert f"{contracts} kept, 0 broken" in proc.stdout
    # The architecture the contracts state: the layers, and the window's tabs independent.
    layers = re.search(r"\nlayers = \[(.*?)\]", config, re.S).group(1)
    assert re.findall(r'"([^"]+)"', layers) == [
        "tokenscope.cli", "tokenscope.gui | tokenscope.serve", "tokenscope.service",
        "tokenscope.train", "tokenscope.lm",
    ]  # fmt: skip
    independence = config.split('type = "independence"')[1].split("[[")[0]
    tabs = {f"tokenscope.gui.{p.name}" for p in (root / "desktop/tokenscope/gui").iterdir()
            # (gui.course drives the whole window, as main_window does: it is above the tabs)
            if p.is_dir() and p.name not in ("widgets", "course", "__pycache__")}  # fmt: skip
    assert set(re.findall(r'"(tokenscope\.gui\.[a-z_]+)"', independence)) == tabs


def test_the_model_service_never_asks_which_kind_of_model_it_holds():
    """One protocol for a model here and on a server: the service branches on capabilities,
    never on the implementation (no server module, no "remote" flag, no attribute probing)."""
    root = Path(__file__).resolve().parents[1] / "desktop/tokenscope/service"
    for path in root.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for word in ("lm.remote", "RemoteModel", "is_server", "is_remote", "self.remote",
                     "hasattr(", "isinstance(model"):  # fmt: skip
            assert word not in text, f"{path.name} mentions {word!r}"


def test_engine_training_and_service_load_no_qt(checkpoint):
    code = f"""
import sys, pkgutil, importlib
import tokenscope.lm, tokenscope.train, tokenscope.service
for package in (tokenscope.lm, tokenscope.train, tokenscope.service):
    for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)
model = tokenscope.load_model({str(checkpoint)!r})
list(model.generate("The", max_tokens=2))
print(",".join(sorted(m for m in sys.modules if m.startswith({QT_PREFIXES!r}))))
"""
    assert _fresh(code) == ""


def test_importing_the_package_does_not_import_torch():
    assert (
        _fresh("import sys, tokenscope, tokenscope.cli; print('torch' in sys.modules)") == "False"
    )
