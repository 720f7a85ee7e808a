"""The ``zoo`` command line: one click group, one module per command group.

`main` is the single place that turns errors into what a user sees: a `ZooError` becomes one line on
stderr and exit 1, a usage mistake exit 2 (click's), Ctrl-C "Aborted." and exit 130, and a traceback
appears only with ``--debug``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from zoo_core._version import __version__
from zoo_core.catalogue import Catalogue
from zoo_core.catalogue_sources import default_catalogue, use_registry_files
from zoo_core.errors import ZooError

__all__ = ["State", "cli", "main"]


@dataclass
class State:
    """What the root options set for every subcommand."""

    registry_files: tuple[Path, ...] = ()

    def catalogue(self) -> Catalogue:
        """The one catalogue of this command: the environment's sources and the ``--registry`` files."""
        return default_catalogue()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.option(
    "--registry",
    "registry_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra registry file (TOML); overrides earlier sources. Repeatable.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, registry_files: tuple[Path, ...], debug: bool) -> None:
    """zoo: find a pretrained backbone, check your data against it, adapt it, ship it."""
    use_registry_files(registry_files)  # every part of the command reads the same catalogue
    ctx.obj = State(registry_files)


def _register_commands() -> None:
    from zoo_core.cli import (
        adapt,
        cache,
        check,
        download,
        evaluate,
        models,
        plugins,
        predict,
        quickstart,
        rank,
        train,
    )
    from zoo_core.plugins import each_result

    for module in (models, plugins, download, cache, check, rank, predict, train, adapt, evaluate, quickstart):
        for command in module.COMMANDS:
            cli.add_command(command)
    for _ in each_result("register_commands", cli=cli):  # a plugin that raises is reported, not fatal
        pass


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    from zoo_core.cli.output import printable

    click.echo(f"zoo: warning: {printable(str(message))}", err=True)


def _quiet_clients() -> None:
    """huggingface_hub logs every retry on stderr; zoo says what went wrong in one line instead.

    The variable is read when huggingface_hub is first imported; the level, if it already is.
    """
    import logging
    import os

    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


# what provides a module zoo imports only where it is used; numpy comes with every extra
_EXTRA_OF_MODULE = dict.fromkeys(("torch", "torchvision", "timm", "safetensors", "PIL"), "vision")
_EXTRA_OF_MODULE |= dict.fromkeys(("transformers", "tokenizers"), "text") | dict.fromkeys(
    ("sklearn", "matplotlib"), "train"
)
_EXTRA_OF_MODULE |= dict.fromkeys(("onnx", "onnxruntime", "onnxscript"), "onnx") | {"google": "caffe"}
_EXTRA_OF_COMMAND = dict(quickstart="all", finetune="train", pretrain="train", rank="train", convert="caffe")
_EXTRA_OF_COMMAND |= {"adapt": "train"}
_EXTRA_OF_COMMAND |= dict.fromkeys(("export", "predict", "doctor"), "onnx")


def _missing_module(error: BaseException) -> ModuleNotFoundError | None:
    """The ModuleNotFoundError behind an error (a plugin's hook wraps it), if there is one."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, ModuleNotFoundError):
        seen = seen.__cause__ or seen.__context__
    return seen


def _install_hint(error: ModuleNotFoundError, args: Sequence[str]) -> str:
    """One line naming the missing module and the extra that installs it, for the command that needed it."""
    module = (error.name or str(error)).split(".")[0]
    command = next((arg for arg in args if arg in cli.commands), None)
    needed = (_EXTRA_OF_MODULE.get(module), _EXTRA_OF_COMMAND.get(command or ""))
    extras = ",".join(dict.fromkeys(each for each in needed if each))
    wanted = "all" if not extras or "all" in extras else extras
    who = f"zoo {command}" if command else "zoo"
    return f"{who} needs {module}, which is not installed: pip install 'zoo-tl[{wanted}]'"


def main(args: Sequence[str] | None = None) -> None:
    """Run the CLI and exit with its status: 0 ok, 1 user error, 2 usage error, 130 interrupted (Ctrl-C)."""
    from zoo_core.cli.output import printable

    args = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in args
    _quiet_clients()
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            if not cli.commands:
                _register_commands()
            status = cli.main(args=args, prog_name="zoo", standalone_mode=False)
        except click.ClickException as error:
            error.show()
            status = error.exit_code
        except (KeyboardInterrupt, click.Abort) as error:  # click turns a Ctrl-C inside a command into Abort
            interrupted = isinstance(error, KeyboardInterrupt) or isinstance(error.__cause__, KeyboardInterrupt)
            if debug and interrupted:
                raise
            click.echo("Aborted.", err=True)
            status = 130 if interrupted else 1  # 128 + SIGINT, as a shell reports a Ctrl-C
        except ZooError as error:
            if debug:
                raise
            missing = _missing_module(error)
            click.echo(f"Error: {printable(_install_hint(missing, args) if missing else str(error))}", err=True)
            status = 1
        except ModuleNotFoundError as error:
            if debug:
                raise
            click.echo(f"Error: {_install_hint(error, args)}", err=True)
            status = 1
        except Exception as error:
            if debug:
                raise
            message = printable(f"{type(error).__name__}: {error}")
            click.echo(f"Error: {message} (run again with --debug for the traceback)", err=True)
            status = 1
    sys.exit(status if isinstance(status, int) else 0)
