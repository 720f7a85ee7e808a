"""Settings come from the environment when asked for."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from zoo_core.settings import Settings


def test_zoo_home_then_xdg_then_the_platform_cache() -> None:
    assert Settings.from_env({"ZOO_HOME": "/z", "XDG_CACHE_HOME": "/x"}).home == Path("/z")
    assert Settings.from_env({"XDG_CACHE_HOME": "/x"}).home == Path("/x/zoo")
    assert Settings.from_env({}).home == Path(platformdirs.user_cache_dir("zoo", appauthor=False))


def test_switches() -> None:
    settings = Settings.from_env(
        {
            "ZOO_REGISTRY": f"/a.toml{os.pathsep}{os.pathsep}~/b.toml",
            "ZOO_DISABLE_PLUGIN_AUTOLOAD": "true",
            "ZOO_DISABLE_PLUGINS": "timm, caffe,",
            "ZOO_TRACE_PLUGINS": "0",
        }
    )
    assert settings.registry_files == (Path("/a.toml"), Path("~/b.toml").expanduser())
    assert settings.disable_autoload and not settings.trace_plugins
    assert settings.disabled_plugins == {"timm", "caffe"}
