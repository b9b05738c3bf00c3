"""Where Tokenscope writes: TOKENSCOPE_HOME first, else the platform's folders; on macOS and
Windows the folder earlier versions used is kept while it holds settings and runs."""

from __future__ import annotations

from pathlib import Path

import platformdirs

from tokenscope import paths


def test_tokenscope_home_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENSCOPE_HOME", str(tmp_path / "home"))
    assert paths.data_dir() == tmp_path / "home"
    assert paths.runs_dir() == tmp_path / "home" / "runs"
    assert paths.settings_file() == tmp_path / "home" / "settings.ini"


def test_the_platforms_folders_are_used_and_follow_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("TOKENSCOPE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.data_dir() == tmp_path / "data" / "tokenscope"
    assert paths.scale_cache_dir() == tmp_path / "cache" / "tokenscope" / "scale"
    assert paths.models_cache_dir().parent == paths.inductor_cache_dir().parent


def test_the_earlier_folder_is_kept_where_the_platform_has_another(tmp_path, monkeypatch):
    """As on macOS: the platform's folder is elsewhere; settings written by an earlier version
    under ~/.local/share/tokenscope are still found, until the platform's folder exists."""
    monkeypatch.delenv("TOKENSCOPE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(paths.sys, "platform", "darwin")
    elsewhere = tmp_path / "Library" / "Application Support" / "tokenscope"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: str(elsewhere))
    assert paths.data_dir() == elsewhere  # nothing earlier: the platform's
    earlier = tmp_path / ".local" / "share" / "tokenscope"
    earlier.mkdir(parents=True)
    (earlier / "settings.ini").write_text("[General]\n")
    assert paths.data_dir() == earlier
    elsewhere.mkdir(parents=True)
    assert paths.data_dir() == elsewhere  # once the platform's exists, it is the one


def test_on_linux_xdg_wins_over_an_existing_local_share(tmp_path, monkeypatch):
    monkeypatch.delenv("TOKENSCOPE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(paths.sys, "platform", "linux")
    (tmp_path / ".local" / "share" / "tokenscope").mkdir(parents=True)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.data_dir() == tmp_path / "xdg" / "tokenscope"


def test_nothing_is_created_by_asking(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENSCOPE_HOME", str(tmp_path / "never"))
    paths.runs_dir(), paths.settings_file()
    assert not Path(tmp_path / "never").exists()
