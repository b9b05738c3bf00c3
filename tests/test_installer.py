"""The Linux install script, run for real into a temporary home; then the installed app starts."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_install_start_and_uninstall(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # A person's environment: no test data folder, no active virtual environment.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "VIRTUAL_ENV", "TOKENSCOPE_"))
    }
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        ["bash", str(ROOT / "installer" / "install.sh"), "--no-launch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    share = home / ".local" / "share"
    entry = share / "applications" / "tokenscope.desktop"
    launcher = home / ".local" / "bin" / "tokenscope"
    assert launcher.is_file() and os.access(launcher, os.X_OK)
    assert (share / "icons" / "hicolor" / "256x256" / "apps" / "tokenscope.png").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "tokenscope.svg").is_file()
    assert f"Exec={launcher}" in entry.read_text()
    validate = shutil.which("desktop-file-validate")
    assert validate, "desktop-file-validate (Debian: desktop-file-utils) is needed"
    check = subprocess.run([validate, str(entry)], capture_output=True, text=True)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr

    version = subprocess.run([str(launcher), "--version"], env=env, capture_output=True, text=True)
    assert version.stdout.startswith("tokenscope ")
    # The installed window opens offscreen, loads the bundled model and closes cleanly.
    started = subprocess.run(
        [str(launcher)],
        env={**env, "TOKENSCOPE_QUIT_AFTER_MS": "5000"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert started.returncode == 0, started.stderr[-3000:]
    assert "Traceback" not in started.stderr
    assert (share / "tokenscope" / "settings.ini").is_file()

    gone = subprocess.run(
        ["bash", str(ROOT / "installer" / "uninstall.sh")], env=env, capture_output=True, text=True
    )
    assert gone.returncode == 0
    assert not launcher.exists() and not entry.exists()
    assert not (share / "tokenscope" / "venv").exists()
    assert (share / "tokenscope" / "settings.ini").is_file()  # the person's settings are kept
