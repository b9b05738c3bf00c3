"""DESIGN rules checked in fresh interpreters: the engine is Qt-free; importing is cheap."""

import subprocess
import sys

QT_PREFIXES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "tokenscope.gui")


def _fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_engine_loads_no_qt(checkpoint):
    code = f"""
import sys, pkgutil, importlib
import tokenscope.lm
for m in pkgutil.walk_packages(tokenscope.lm.__path__, "tokenscope.lm."):
    importlib.import_module(m.name)
try:
    import tokenscope.train  # the training engine, once it exists
except ModuleNotFoundError:
    pass
model = tokenscope.load_model({str(checkpoint)!r})
list(model.generate("The", max_tokens=2))
print(",".join(sorted(m for m in sys.modules if m.startswith({QT_PREFIXES!r}))))
"""
    assert _fresh(code) == ""


def test_importing_the_package_does_not_import_torch():
    assert (
        _fresh("import sys, tokenscope, tokenscope.cli; print('torch' in sys.modules)") == "False"
    )
