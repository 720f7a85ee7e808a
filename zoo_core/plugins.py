"""Finding plugins, reporting their state, and calling the hooks that act on one model.

Plugins come from the ``zoo`` entry-point group (built-ins included) and from `register_plugin` calls.
A plugin that fails to import, or raises in a hook, is recorded with its error and skipped: one broken
plugin never breaks the CLI. The manager is made on first use, from the environment switches in
`zoo_core.settings`, and `reset_plugin_manager` drops it (tests use this).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pluggy

from zoo_core import hookspecs
from zoo_core.checks import CheckReport
from zoo_core.errors import PluginError, PluginUnavailableError, ZooError
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec

__all__ = [
    "PluginStatus",
    "Requirement",
    "ZooPluginManager",
    "build_backbone",
    "check_input",
    "convert_weights",
    "each_result",
    "get_plugin_manager",
    "plugin_statuses",
    "reset_plugin_manager",
]

ENTRY_POINT_GROUP = "zoo"


@dataclass(frozen=True, slots=True)
class Requirement:
    """A module a plugin needs, and the command that installs it."""

    module: str  # top-level import name, e.g. "timm"
    install: str  # e.g. "pip install 'zoo-tl[vision]'"


@dataclass(frozen=True, slots=True)
class PluginStatus:
    """What `zoo plugins` reports about one plugin."""

    name: str
    distribution: str | None  # the installed distribution that ships it, when it came from one
    version: str | None
    state: Literal["ok", "unavailable", "error", "blocked"]
    reason: str | None = None  # why it is not ok
    hint: str | None = None  # the command that fixes it


class ZooPluginManager(pluggy.PluginManager):
    """pluggy's manager, plus what zoo remembers about plugins that failed."""

    def __init__(self) -> None:
        super().__init__("zoo")
        self.add_hookspecs(hookspecs)
        self.failures: dict[str, str] = {}  # plugin name -> what went wrong
        self.distributions: dict[str, importlib.metadata.Distribution] = {}
        self.blocked_names: set[str] = set()

    def record_failure(self, name: str, hook: str, error: BaseException) -> None:
        self.failures.setdefault(name, f"{hook} raised {type(error).__name__}: {error}")


_manager: ZooPluginManager | None = None


def get_plugin_manager() -> ZooPluginManager:
    """The process-wide plugin manager, made on first call from the current environment."""
    global _manager
    if _manager is None:
        _manager = _make_manager(Settings.from_env())
    return _manager


def reset_plugin_manager() -> None:
    """Forget the manager, so the next call re-reads the environment and entry points."""
    global _manager
    _manager = None


def _make_manager(settings: Settings) -> ZooPluginManager:
    manager = ZooPluginManager()
    for name in settings.disabled_plugins:
        manager.set_blocked(name)
        manager.blocked_names.add(name)
    if not settings.disable_autoload:
        _load_entry_points(manager)
    if settings.trace_plugins:
        manager.add_hookcall_monitoring(_trace_before, _trace_after)
    return manager


def _load_entry_points(manager: ZooPluginManager) -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = entry_point.name
        if entry_point.dist is not None:
            manager.distributions[name] = entry_point.dist
        if manager.is_blocked(name) or manager.has_plugin(name):
            continue
        try:
            manager.register(entry_point.load(), name=name)
        except Exception as error:  # a broken plugin is reported, never fatal
            manager.record_failure(name, f"importing {entry_point.value}", error)


def _trace_before(hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
    plugins = ", ".join(impl.plugin_name for impl in hook_impls)
    arguments = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())
    print(f"zoo trace: {hook_name}({arguments}) -> [{plugins}]", file=sys.stderr)


def _trace_after(
    outcome: pluggy.Result[Any], hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
) -> None:
    result = f"raised {outcome.exception!r}" if outcome.exception else _short(outcome.get_result())
    print(f"zoo trace: {hook_name} returned {result}", file=sys.stderr)


def _short(value: object, width: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def each_result(hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
    """Call a hook plugin by plugin, yielding (plugin name, its result).

    A plugin that raises is recorded (`zoo plugins` shows it as an error) and skipped, so one broken
    plugin cannot hide the others' answers. Calls still pass through tracing.
    """
    manager = get_plugin_manager()
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        others = [plugin for plugin in manager.get_plugins() if plugin is not impl.plugin]
        caller = manager.subset_hook_caller(hook_name, remove_plugins=others)
        try:
            results = caller(**kwargs)
        except Exception as error:
            manager.record_failure(impl.plugin_name, hook_name, error)
            continue
        for result in results:
            yield impl.plugin_name, result


def _installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it ("google.protobuf" without "google": no)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _missing_requirements() -> dict[str, list[Requirement]]:
    missing: dict[str, list[Requirement]] = {}
    for name, requirements in each_result("plugin_requirements"):
        absent = [each for each in requirements if not _installed(each.module)]
        if absent:
            missing[name] = absent
    return missing


def plugin_statuses() -> list[PluginStatus]:
    """The state of every plugin zoo knows of: registered, failed to import, or blocked."""
    manager = get_plugin_manager()
    missing = _missing_requirements()
    # a blocked name is registered as None: it is listed only when an installed entry point has it
    names = {name for name, plugin in manager.list_name_plugin() if plugin is not None} | set(manager.failures)
    names |= manager.blocked_names & set(manager.distributions)
    statuses = []
    for name in sorted(names):
        dist = manager.distributions.get(name)
        where = {"distribution": dist.metadata["Name"] if dist else None, "version": dist.version if dist else None}
        if name in manager.blocked_names:
            status = PluginStatus(name, **where, state="blocked", reason="listed in ZOO_DISABLE_PLUGINS")
        elif name in manager.failures:
            status = PluginStatus(name, **where, state="error", reason=manager.failures[name])
        elif name in missing:
            modules = ", ".join(each.module for each in missing[name])
            hint = " && ".join(dict.fromkeys(each.install for each in missing[name]))
            status = PluginStatus(name, **where, state="unavailable", reason=f"missing {modules}", hint=hint)
        else:
            status = PluginStatus(name, **where, state="ok")
        statuses.append(status)
    return statuses


def _require_usable(spec: ModelSpec) -> None:
    """Fail with the fixing command when the plugin a spec names cannot run."""
    for status in plugin_statuses():
        if status.name == spec.plugin:
            if status.state == "ok":
                return
            fix = f"; fix: {status.hint}" if status.hint else ""
            raise PluginUnavailableError(
                f"model '{spec.name}' needs plugin '{spec.plugin}', which is {status.state}: {status.reason}{fix}"
            )
    raise PluginUnavailableError(
        f"model '{spec.name}' needs plugin '{spec.plugin}', which is not installed; "
        "install the package that provides it, then check with `zoo plugins`"
    )


def _call_first(hook_name: str, what: str, **kwargs: Any) -> Any:
    try:
        return getattr(get_plugin_manager().hook, hook_name)(**kwargs)
    except Exception as error:
        if isinstance(error, ZooError):  # already a message for the user (a bad file, a failed download)
            raise
        raise PluginError(f"{what} failed in a plugin's {hook_name}: {type(error).__name__}: {error}") from error


def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object:
    """Ask the spec's plugin to build its network from the files in `weights_dir`."""
    _require_usable(spec)
    backbone = _call_first("build_backbone", f"building '{spec.name}'", spec=spec, weights_dir=weights_dir)
    if backbone is None:
        raise PluginError(f"plugin '{spec.plugin}' did not build '{spec.name}' (arch '{spec.arch}')")
    return backbone


def check_input(spec: ModelSpec, data: object) -> CheckReport:
    """Ask the plugins to check `data` against the spec's input."""
    report = _call_first("check_input", f"checking data for '{spec.name}'", spec=spec, data=data)
    if report is None:
        raise PluginError(
            f"no plugin checks {spec.modality} data for '{spec.name}'; see `zoo plugins` for unavailable ones"
        )
    return report  # type: ignore[no-any-return]


def convert_weights(format: str, source: Path, destination: Path) -> ModelSpec:
    """Ask the plugins to convert `source`, in a foreign format, into safetensors in `destination`."""
    spec = _call_first("convert_weights", f"converting {source}", format=format, source=source,
                       destination=destination)  # fmt: skip
    if spec is None:
        raise PluginError(f"no plugin converts the format '{format}'; see `zoo plugins` for unavailable ones")
    return spec  # type: ignore[no-any-return]
