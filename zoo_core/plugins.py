"""Finding plugins, reporting their state, and calling their hooks one plugin at a time.

Plugins come from the ``zoo`` entry-point group (built-ins included) and from `register_plugin` calls.
Every hook is called through `each_result`: plugin by plugin, in pluggy's call order, each isolated, so
one broken plugin never breaks the CLI nor another plugin's models. A plugin that fails to import, or
defines a function marked as a hook that zoo does not have (a misspelling), is remembered for the process;
one that fails in a hook is remembered in ``$ZOO_HOME`` until that hook answers again
(`zoo_core.plugin_failures`), so `zoo plugins` names it in a later command. The manager is made on first
use, from the environment switches in `zoo_core.settings`, and `reset_plugin_manager` drops it (tests use
this).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pluggy

from zoo_core import hookspecs
from zoo_core.errors import PluginError, PluginUnavailableError, PluginWarning, ZooError
from zoo_core.hookspecs import Requirement
from zoo_core.plugin_failures import Key, PluginFailure, clear_failure, read_failures, record_failure
from zoo_core.settings import Settings
from zoo_core.specs import ModelSpec

if TYPE_CHECKING:
    from zoo_core.catalogue import Catalogue

__all__ = [
    "PluginStatus",
    "Requirement",
    "ZooPluginManager",
    "build_backbone",
    "convert_weights",
    "each_result",
    "get_plugin_manager",
    "not_loaded",
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
# Hooks that answer nothing: a call that returns is their success, and clears their recorded failure.
ANSWERLESS_HOOKS = frozenset({"register_commands"})


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
        self.import_errors: dict[str, str] = {}  # plugin name -> why it could not be imported (this process only)
        self.unknown_hooks: dict[str, str] = {}  # plugin name -> its functions marked as hooks zoo does not have
        self.distributions: dict[str, importlib.metadata.Distribution] = {}
        self.blocked_names: set[str] = set()
        self.warned: set[tuple[str, str, str | None, str]] = set()  # (plugin, hook, model, problem) warned of
        self._hook_failures: dict[Key, PluginFailure] | None = None  # read from the home on first use

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """pluggy's `register`, noting the plugin's hook functions that match no hook (pluggy ignores them):
        the plugin is registered for the others and shown in error, naming them."""
        registered = super().register(plugin, name)
        if registered is not None:
            self.unknown_hooks.pop(registered, None)
            unknown = [_unknown_hook_problem(self, each) for each in _unknown_hooks(self, plugin)]
            if unknown:
                self.unknown_hooks[registered] = "; ".join(unknown)
        return registered

    def import_failed(self, name: str, hook: str, error: BaseException) -> None:
        self.import_errors.setdefault(name, f"{hook} raised {type(error).__name__}: {error}")

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


def _unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """The names of `plugin`'s hook functions that no hookspec declares (pluggy's `check_pending` rule: those
    marked ``optionalhook`` are allowed)."""
    return sorted(
        caller.name
        for caller in manager.get_hookcallers(plugin) or ()
        if not caller.has_spec()
        and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
    )


def _unknown_hook_problem(manager: pluggy.PluginManager, name: str) -> str:
    hooks = sorted(each for each, caller in vars(manager.hook).items() if caller.has_spec())
    close = difflib.get_close_matches(name, hooks, n=1)
    fix = f"rename it to '{close[0]}'" if close else f"zoo's hooks are {', '.join(hooks)}"
    return f"defines hook '{name}', which zoo does not have, so zoo never calls it; {fix}"


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
        except (Exception, SystemExit) as error:  # a broken plugin is reported, never fatal; nor is its exit
            manager.import_failed(name, f"importing {entry_point.value}", error)


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
    only: str | None = None,
    pass_zoo_errors: bool = False,
    check: Callable[[Any], str | None] | None = None,
    **kwargs: Any,
) -> Iterator[tuple[str, Any]]:
    """Ask each plugin in turn, in pluggy's call order, and yield (plugin name, its answer) for each answer
    that is not None. Stop iterating to stop asking: a caller taking the first answer asks no more plugins.
    With `only`, only that plugin is asked.

    This is the one way zoo calls a hook, so that every plugin is isolated, named and traced alike. A plugin
    that raises (`SystemExit` included: a plugin does not end zoo), or whose answer `check` finds wrong (it
    returns what is wrong, or None; hooks whose answers always have one shape are checked here, see
    `ANSWER_CHECKS`), is recorded for `zoo plugins`; a later answer of the hook that is not None and passes
    the check clears it (None for another plugin's model says nothing about the plugin's own). When `owner`,
    the plugin the call is for (a spec's ``plugin``), fails, the error is raised: a `ZooError` as it is (a
    message for the user), any other as a `PluginError` naming the plugin, its distribution and the model.
    Any other plugin that fails is skipped with a `PluginWarning` naming it (once per plugin, hook, model and
    problem in a command), so it cannot break other plugins' models; with `pass_zoo_errors` its `ZooError`s
    are raised too (`convert_weights`: the plugin that knows the format explains what is wrong with the
    user's file). Wrappers are not called: each plugin answers alone.
    """
    manager = get_plugin_manager()
    check = check if check is not None else ANSWER_CHECKS.get(hook_name)
    callers = reversed(getattr(manager.hook, hook_name).get_hookimpls())  # pluggy lists them last-called first
    impls = [impl for impl in callers if not (impl.wrapper or impl.hookwrapper)]
    if only is not None:
        impls = [impl for impl in impls if impl.plugin_name == only]
    _trace(manager, f"{hook_name}({_arguments(kwargs)}) asks, in order: {_names(impls)}")
    model = kwargs["spec"].name if isinstance(kwargs.get("spec"), ModelSpec) else None
    for impl in impls:
        name, arguments = impl.plugin_name, [kwargs[argument] for argument in impl.argnames]
        try:
            answer = impl.function(*arguments)
        except (Exception, SystemExit) as error:
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
        if answer is not None or hook_name in ANSWERLESS_HOOKS:
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
    error: BaseException | None,
) -> None:
    """Record a plugin's failure; raise it when the call was for the plugin's model, else warn (once) and go on."""
    failure = manager.hook_failed(plugin, hook_name, problem)
    distribution, version = plugin_distribution(plugin)
    culprit = f"plugin '{plugin}'" + (f" (distribution {distribution} {version})" if distribution else "")
    what = f"{culprit} failed" + (f" for '{model}'" if model else "") + f": {hook_name} {failure.error}"
    if plugin == owner:
        raise PluginError(f"{what}; see `zoo plugins`") from error
    if (plugin, hook_name, model, problem) not in manager.warned:
        manager.warned.add((plugin, hook_name, model, problem))
        warnings.warn(f"{what}; skipped it (see `zoo plugins`)", PluginWarning, stacklevel=4)


def _trace(manager: ZooPluginManager, line: str) -> None:
    if manager.tracing:
        print(f"zoo trace: {line}", file=sys.stderr)


def _names(impls: list[pluggy.HookImpl]) -> str:
    return ", ".join(impl.plugin_name for impl in impls) or "no plugin"


def _arguments(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())


def _short(value: object, width: int = 120) -> str:
    text = " ".join(repr(value).split())  # one line: a module's repr spans many
    return text if len(text) <= width else text[: width - 1] + "…"


def _installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it ("google.protobuf" without "google": no)."""
    try:
        return importlib.util.find_spec(module) is not None
    except Exception:  # a parent package missing or broken, a name find_spec refuses: zoo cannot import it
        return False


def _requirements_problem(answer: object) -> str | None:
    if not isinstance(answer, list | tuple) or not all(isinstance(each, Requirement) for each in answer):
        return f"returned {_short(answer, 60)}, not a list of Requirement"
    for each in answer:
        if not isinstance(each.module, str) or not all(part.isidentifier() for part in each.module.split(".")):
            return f"returned a Requirement whose module {_short(each.module, 60)} is no module name like 'timm'"
        if not isinstance(each.install, str):
            return f"returned a Requirement whose install {_short(each.install, 60)} is no command (a str)"
    return None


def _models_problem(answer: object) -> str | None:
    if isinstance(answer, list | tuple):
        return None  # its items are checked one by one (`zoo_core.catalogue_sources`): a bad one is skipped
    return f"returned {_short(answer, 60)}, not a list of registry entries, Paths or ModelSpecs"


def _missing_requirements(only: str | None = None) -> dict[str, list[Requirement]]:
    missing: dict[str, list[Requirement]] = {}
    for name, requirements in each_result("plugin_requirements", only=only):
        absent = [each for each in requirements if not _installed(each.module)]
        if absent:
            missing[name] = absent
    return missing


def _known_plugins(manager: ZooPluginManager) -> set[str]:
    """Registered plugins, those that failed to import, and blocked ones an installed entry point names."""
    # a blocked name is registered as None: it is listed only when an installed entry point has it
    names = {name for name, plugin in manager.list_name_plugin() if plugin is not None} | set(manager.import_errors)
    return names | (manager.blocked_names & set(manager.distributions))


def plugin_statuses() -> list[PluginStatus]:
    """The state of every plugin zoo knows of: registered, failed to import, or blocked.

    A plugin is in error when it failed to import, defines a hook zoo does not have, or when one of its
    hooks failed (in this command or an earlier one) and has not answered since, in the version installed now.
    """
    manager = get_plugin_manager()
    missing = _missing_requirements()
    return [_status(manager, name, missing.get(name, [])) for name in sorted(_known_plugins(manager))]


def _status(manager: ZooPluginManager, name: str, missing: list[Requirement]) -> PluginStatus:
    distribution, version = plugin_distribution(name)
    failed = [
        each.describe() for each in manager.hook_failures().values() if (each.plugin, each.version) == (name, version)
    ]
    if name in manager.blocked_names:
        return PluginStatus(name, distribution, version, "blocked", reason="listed in ZOO_DISABLE_PLUGINS")
    if name in manager.import_errors:
        return PluginStatus(name, distribution, version, "error", reason=manager.import_errors[name])
    problems = [manager.unknown_hooks[name]] if name in manager.unknown_hooks else []
    if problems + failed:
        return PluginStatus(name, distribution, version, "error", reason="; ".join(problems + failed))
    if missing:
        modules = ", ".join(each.module for each in missing)
        hint = " && ".join(dict.fromkeys(each.install for each in missing))
        return PluginStatus(name, distribution, version, "unavailable", reason=f"missing {modules}", hint=hint)
    return PluginStatus(name, distribution, version, "ok")


def _require_usable(spec: ModelSpec) -> None:
    """Fail with the fixing command when the plugin a spec names cannot run; only that plugin is asked.

    A plugin in error only because a hook failed earlier is still asked: the cause (a file, the network)
    may be gone, and a success clears the error.
    """
    manager = get_plugin_manager()
    if spec.plugin not in _known_plugins(manager):
        raise PluginUnavailableError(
            f"model '{spec.name}' needs plugin '{spec.plugin}', which is not installed; "
            "install the package that provides it, then check with `zoo plugins`"
        )
    missing = _missing_requirements(only=spec.plugin).get(spec.plugin, [])
    status = _status(manager, spec.plugin, missing)
    if status.state == "ok" or (status.state == "error" and manager.get_plugin(spec.plugin) is not None):
        return
    fix = f"; fix: {status.hint}" if status.hint else ""
    raise PluginUnavailableError(
        f"model '{spec.name}' needs plugin '{spec.plugin}', which is {status.state}: {status.reason}{fix}"
    )


def _backbone_problem(spec: ModelSpec) -> Callable[[object], str | None]:
    """The check of a `build_backbone` answer for `spec`: a `zoo_core.backbone.Backbone`, unless the model is
    no network (a word-vector table, modality "embedding"), which comes as its plugin builds it."""

    def problem(answer: object) -> str | None:
        # a Backbone exists only once its module (and torch) is imported: looking it up imports nothing
        backbone = sys.modules.get("zoo_core.backbone")
        if spec.modality == "embedding" or (backbone is not None and isinstance(answer, backbone.Backbone)):
            return None
        return (
            f"returned a {type(answer).__name__}, not a zoo_core.Backbone: a model of modality '{spec.modality}' "
            "is built as an instance of a Backbone subclass"
        )

    return problem


def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object:
    """Ask the plugins, in call order, to build the spec's network from the files in `weights_dir`."""
    _require_usable(spec)
    answers = each_result(
        "build_backbone", owner=spec.plugin, check=_backbone_problem(spec), spec=spec, weights_dir=weights_dir
    )
    built = next(answers, None)
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


def onnx_exporter(spec: ModelSpec) -> tuple[str, str, str] | None:
    """The exporter a plugin chooses for the spec, (plugin, exporter, why), from the first that answers in
    call order; None when none does (zoo's choice for the modality stands)."""
    chosen = next(each_result("onnx_exporter", owner=spec.plugin, check=_exporter_problem, spec=spec), None)
    if chosen is None:
        return None
    plugin, (exporter, why) = chosen
    return plugin, exporter, why


# The checks of hooks whose answers have one shape in every call; `each_result` applies them unless the
# caller passes its own `check`.
ANSWER_CHECKS: Mapping[str, Callable[[Any], str | None]] = {
    "plugin_requirements": _requirements_problem,
    "register_models": _models_problem,
}


def not_loaded(catalogue: Catalogue) -> tuple[str, ...]:
    """Plugins that entries name but zoo has not loaded (blocked, autoload off, failed to import, absent):
    their models cannot be used; `zoo list` and `zoo search` leave them out, `zoo plugins` lists them."""
    loaded = {name for name, plugin in get_plugin_manager().list_name_plugin() if plugin is not None}
    return tuple(sorted(set(catalogue.plugins()) - loaded))
