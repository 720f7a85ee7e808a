"""Finding plugins, reporting their state, and calling their hooks one plugin at a time.

Plugins come from the ``zoo`` entry-point group (built-ins included) and from `register_plugin` calls.
Every hook is called through `each_result`: plugin by plugin, in pluggy's call order, each isolated, so
one broken plugin never breaks the CLI nor another plugin's models. A plugin that fails to import is
remembered for the process; one that fails in a hook is remembered in ``$ZOO_HOME`` until that hook
succeeds again (`zoo_core.plugin_failures`), so `zoo plugins` names it in a later command. The manager is
made on first use, from the environment switches in `zoo_core.settings`, and `reset_plugin_manager` drops
it (tests use this).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pluggy

from zoo_core import hookspecs
from zoo_core.errors import PluginError, PluginUnavailableError, PluginWarning, ZooError
from zoo_core.hookspecs import Requirement
from zoo_core.plugin_failures import Key, PluginFailure, clear_failure, read_failures, record_failure
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec

__all__ = [
    "PluginStatus",
    "Requirement",
    "ZooPluginManager",
    "build_backbone",
    "convert_weights",
    "each_result",
    "get_plugin_manager",
    "onnx_exporter",
    "plugin_distribution",
    "plugin_statuses",
    "reset_plugin_manager",
    "used_plugins",
]

ENTRY_POINT_GROUP = "zoo"
EXPORTER_NAMES = ("torchscript", "dynamo")  # what an `onnx_exporter` answer may choose
# Hooks whose answers act on one model, and so are what `used_plugins` records. The catalogue's hooks are
# left out: it is loaded for every model at once and cached, so whether they run inside a block is chance.
MODEL_HOOKS = frozenset({"build_backbone", "check_input", "convert_weights", "onnx_exporter"})


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

    def __init__(self, settings: Settings) -> None:
        super().__init__("zoo")
        self.add_hookspecs(hookspecs)
        self.home = settings.home
        self.tracing = settings.trace_plugins  # ZOO_TRACE_PLUGINS (pluggy's `trace` is its own debugging)
        self.failures: dict[str, str] = {}  # plugin name -> why it could not be imported (this process only)
        self.distributions: dict[str, importlib.metadata.Distribution] = {}
        self.blocked_names: set[str] = set()
        self._hook_failures: dict[Key, PluginFailure] | None = None  # read from the home on first use

    def record_failure(self, name: str, hook: str, error: BaseException) -> None:
        self.failures.setdefault(name, f"{hook} raised {type(error).__name__}: {error}")

    def hook_failures(self) -> dict[Key, PluginFailure]:
        """Hook failures recorded in the home, this process's included, oldest first."""
        if self._hook_failures is None:
            self._hook_failures = read_failures(self.home)
        return self._hook_failures

    def hook_failed(self, plugin: str, hook: str, problem: str) -> PluginFailure:
        failure = record_failure(self.home, plugin, hook, plugin_distribution(plugin)[1], problem)
        self.hook_failures().pop((plugin, hook), None)  # re-added last: the newest
        self.hook_failures()[plugin, hook] = failure
        return failure

    def hook_succeeded(self, plugin: str, hook: str) -> None:
        if self.hook_failures().pop((plugin, hook), None) is not None:
            clear_failure(self.home, plugin, hook)


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
    manager = ZooPluginManager(settings)
    for name in settings.disabled_plugins:
        manager.set_blocked(name)
        manager.blocked_names.add(name)
    if not settings.disable_autoload:
        _load_entry_points(manager)
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


def plugin_distribution(name: str) -> tuple[str | None, str | None]:
    """The distribution that installed plugin `name` and its version; (None, None) for an in-memory plugin."""
    dist = get_plugin_manager().distributions.get(name)
    return (dist.metadata["Name"], dist.version) if dist is not None else (None, None)


_uses: ContextVar[tuple[dict[str, set[str]], ...]] = ContextVar("zoo_plugin_uses", default=())


@contextmanager
def used_plugins() -> Iterator[dict[str, set[str]]]:
    """For the block: a dict, plugin name -> the hooks whose answers zoo used inside it, filled as it runs.

    An answer counts when it acted on a model (`MODEL_HOOKS`) and was not ``None`` or empty: the backbone
    built, the findings added, the exporter chosen, the weights converted. Blocks nest; an outer block sees
    what inner ones saw. A run's manifest names these plugins' distributions.
    """
    used: dict[str, set[str]] = {}
    token = _uses.set((*_uses.get(), used))
    try:
        yield used
    finally:
        _uses.reset(token)


def _note_use(plugin: str, hook: str, answer: object) -> None:
    if hook in MODEL_HOOKS and not (isinstance(answer, list | tuple) and not answer):
        for used in _uses.get():
            used.setdefault(plugin, set()).add(hook)


def each_result(
    hook_name: str,
    /,
    *,
    owner: str | None = None,
    pass_zoo_errors: bool = False,
    check: Callable[[Any], str | None] | None = None,
    **kwargs: Any,
) -> Iterator[tuple[str, Any]]:
    """Ask each plugin in turn, in pluggy's call order, and yield (plugin name, its answer) for each answer
    that is not None. Stop iterating to stop asking: a caller taking the first answer asks no more plugins.

    This is the one way zoo calls a hook, so that every plugin is isolated, named and traced alike. A plugin
    that raises, or whose answer `check` finds wrong (it returns what is wrong, or None), is recorded for
    `zoo plugins`; a later call of the hook that succeeds clears it. When `owner`, the plugin the call is
    for (a spec's ``plugin``), fails, the error is raised: a `ZooError` as it is (a message for the user), any
    other as a `PluginError` naming the plugin, its distribution and the model. Any other plugin that fails
    is skipped with a `PluginWarning` naming it, so it cannot break other plugins' models; with
    `pass_zoo_errors` its `ZooError`s are raised too (`convert_weights`: the plugin that knows the format
    explains what is wrong with the user's file). Wrappers are not called: each plugin answers alone.
    """
    manager = get_plugin_manager()
    callers = reversed(getattr(manager.hook, hook_name).get_hookimpls())  # pluggy lists them last-called first
    impls = [impl for impl in callers if not (impl.wrapper or impl.hookwrapper)]
    _trace(manager, f"{hook_name}({_arguments(kwargs)}) asks, in order: {_names(impls)}")
    model = kwargs["spec"].name if isinstance(kwargs.get("spec"), ModelSpec) else None
    for impl in impls:
        name, arguments = impl.plugin_name, [kwargs[argument] for argument in impl.argnames]
        try:
            answer = impl.function(*arguments)
        except Exception as error:
            _trace(manager, f"  {name} raised {error!r}")
            if isinstance(error, ZooError) and (name == owner or pass_zoo_errors):
                raise  # a message for the user: a bad file, a failed download
            _fail(manager, hook_name, name, owner, model, f"raised {type(error).__name__}: {error}", error)
            continue
        _trace(manager, f"  {name} returned {_short(answer)}")
        problem = None if answer is None or check is None else check(answer)
        if problem is not None:
            _fail(manager, hook_name, name, owner, model, problem, None)
            continue
        manager.hook_succeeded(name, hook_name)
        if answer is not None:
            _note_use(name, hook_name, answer)
            yield name, answer


def _fail(
    manager: ZooPluginManager,
    hook_name: str,
    plugin: str,
    owner: str | None,
    model: str | None,
    problem: str,
    error: Exception | None,
) -> None:
    """Record a plugin's failure; raise it when the call was for the plugin's model, else warn and go on."""
    failure = manager.hook_failed(plugin, hook_name, problem)
    distribution, version = plugin_distribution(plugin)
    culprit = f"plugin '{plugin}'" + (f" (distribution {distribution} {version})" if distribution else "")
    what = f"{culprit} failed" + (f" for '{model}'" if model else "") + f": {hook_name} {failure.error}"
    if plugin == owner:
        raise PluginError(f"{what}; see `zoo plugins`") from error
    warnings.warn(f"{what}; skipped it (see `zoo plugins`)", PluginWarning, stacklevel=4)


def _trace(manager: ZooPluginManager, line: str) -> None:
    if manager.tracing:
        print(f"zoo trace: {line}", file=sys.stderr)


def _names(impls: list[pluggy.HookImpl]) -> str:
    return ", ".join(impl.plugin_name for impl in impls) or "no plugin"


def _arguments(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())


def _short(value: object, width: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it ("google.protobuf" without "google": no)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _requirements_problem(answer: object) -> str | None:
    if isinstance(answer, list | tuple) and all(isinstance(each, Requirement) for each in answer):
        return None
    return f"returned {_short(answer, 60)}, not a list of Requirement"


def _missing_requirements() -> dict[str, list[Requirement]]:
    missing: dict[str, list[Requirement]] = {}
    for name, requirements in each_result("plugin_requirements", check=_requirements_problem):
        absent = [each for each in requirements if not _installed(each.module)]
        if absent:
            missing[name] = absent
    return missing


def plugin_statuses() -> list[PluginStatus]:
    """The state of every plugin zoo knows of: registered, failed to import, or blocked.

    A plugin is in error when it failed to import, or when one of its hooks failed (in this command or an
    earlier one) and has not succeeded since, in the version installed now.
    """
    manager = get_plugin_manager()
    missing = _missing_requirements()
    # a blocked name is registered as None: it is listed only when an installed entry point has it
    names = {name for name, plugin in manager.list_name_plugin() if plugin is not None} | set(manager.failures)
    names |= manager.blocked_names & set(manager.distributions)
    return [_status(manager, name, missing.get(name, [])) for name in sorted(names)]


def _status(manager: ZooPluginManager, name: str, missing: list[Requirement]) -> PluginStatus:
    distribution, version = plugin_distribution(name)
    failed = [
        each.describe() for each in manager.hook_failures().values() if (each.plugin, each.version) == (name, version)
    ]
    if name in manager.blocked_names:
        return PluginStatus(name, distribution, version, "blocked", reason="listed in ZOO_DISABLE_PLUGINS")
    if name in manager.failures or failed:
        reason = "; ".join([manager.failures[name]] if name in manager.failures else failed)
        return PluginStatus(name, distribution, version, "error", reason=reason)
    if missing:
        modules = ", ".join(each.module for each in missing)
        hint = " && ".join(dict.fromkeys(each.install for each in missing))
        return PluginStatus(name, distribution, version, "unavailable", reason=f"missing {modules}", hint=hint)
    return PluginStatus(name, distribution, version, "ok")


def _require_usable(spec: ModelSpec) -> None:
    """Fail with the fixing command when the plugin a spec names cannot run.

    A plugin in error only because a hook failed earlier is still asked: the cause (a file, the network)
    may be gone, and a success clears the error.
    """
    for status in plugin_statuses():
        if status.name == spec.plugin:
            if status.state == "ok" or (
                status.state == "error" and get_plugin_manager().get_plugin(spec.plugin) is not None
            ):
                return
            fix = f"; fix: {status.hint}" if status.hint else ""
            raise PluginUnavailableError(
                f"model '{spec.name}' needs plugin '{spec.plugin}', which is {status.state}: {status.reason}{fix}"
            )
    raise PluginUnavailableError(
        f"model '{spec.name}' needs plugin '{spec.plugin}', which is not installed; "
        "install the package that provides it, then check with `zoo plugins`"
    )


def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object:
    """Ask the plugins, in call order, to build the spec's network from the files in `weights_dir`."""
    _require_usable(spec)
    built = next(each_result("build_backbone", owner=spec.plugin, spec=spec, weights_dir=weights_dir), None)
    if built is None:
        raise PluginError(f"plugin '{spec.plugin}' did not build '{spec.name}' (arch '{spec.arch}')")
    return built[1]


def _spec_problem(answer: object) -> str | None:
    return None if isinstance(answer, ModelSpec) else f"returned {_short(answer, 60)}, not a ModelSpec"


def convert_weights(format: str, source: Path, destination: Path) -> ModelSpec:
    """Ask the plugins, in call order, to convert `source`, in a foreign format, into safetensors in
    `destination`; the first that answers does it."""
    answers = each_result(
        "convert_weights",
        pass_zoo_errors=True,
        check=_spec_problem,
        format=format,
        source=source,
        destination=destination,
    )
    converted = next(answers, None)
    if converted is None:
        raise PluginError(f"no plugin converts the format '{format}'; see `zoo plugins` for unavailable ones")
    return converted[1]  # type: ignore[no-any-return]


def _exporter_problem(answer: object) -> str | None:
    if isinstance(answer, tuple) and len(answer) == 2 and answer[0] in EXPORTER_NAMES and isinstance(answer[1], str):
        return None
    return f"returned {_short(answer, 60)}, not (exporter, why) with exporter 'torchscript' or 'dynamo'"


def onnx_exporter(spec: ModelSpec) -> tuple[str, str] | None:
    """The exporter a plugin chooses for the spec, (exporter, why), from the first that answers in call order;
    None when none does (zoo's choice for the modality stands)."""
    chosen = next(each_result("onnx_exporter", owner=spec.plugin, check=_exporter_problem, spec=spec), None)
    return None if chosen is None else chosen[1]
