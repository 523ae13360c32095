"""The typer app: registers the commands and is the one place that turns HrposeError into a one-line message.

Every command gets ``--verbose/-v`` from ``_reporting_errors``: without it a user error prints one line and
exits 1; with it the traceback is shown too.
"""

import functools
import inspect
import typing
from typing import Annotated, Callable

import typer
from rich.console import Console
from rich.markup import escape

from hrpose_cli import __version__
from hrpose_cli.cli.options import Range
from hrpose_cli.errors import HrposeError

err_console = Console(stderr=True, highlight=False)

_Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show the full traceback on errors.")]


def _option_rules(command: Callable) -> dict[str, tuple[str, Range]]:
    """Per parameter of ``command`` with a Range in its Annotated type: its flag and the Range.

    Also gives boolean flags an empty metavar, so help shows no ``<bool>`` beside a switch."""
    rules = {}
    for name, hint in typing.get_type_hints(command, include_extras=True).items():
        extras = getattr(hint, "__metadata__", ())
        info = next((e for e in extras if isinstance(e, typer.models.OptionInfo)), None)
        if info is None:
            continue
        if typing.get_args(hint)[0] in (bool, typing.Optional[bool]) and info.metavar is None:
            info.metavar = ""
        for rule in extras:
            if isinstance(rule, Range):
                # Annotated options name their flag in the first positional slot, which typer keeps as ``default``.
                decls = [info.default, *info.param_decls]
                flag = next((d for d in decls if isinstance(d, str) and d.startswith("--")), f"--{name}")
                rules[name] = (flag.split("/")[0], rule)
    return rules


def _reporting_errors(command: Callable) -> Callable:
    """Wrap a command so HrposeError becomes 'error: ...' on stderr and exit 1, add -v/--verbose, and check the
    options' Ranges before the command runs."""
    rules = _option_rules(command)

    @functools.wraps(command)
    def wrapper(*args, verbose: bool = False, **kwargs):
        try:
            for name, (flag, rule) in rules.items():
                rule.check(flag, kwargs.get(name))
            return command(*args, **kwargs)
        except HrposeError as err:
            if verbose:
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True, markup=True)  # "[x, y, w, h]" is text, not markup
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    signature = inspect.signature(command)
    verbose = inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=_Verbose)
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), verbose])
    wrapper.__annotations__ = {**command.__annotations__, "verbose": _Verbose}
    return wrapper


app = typer.Typer(
    help="HRNet human pose estimation on COCO-format data: train, evaluate, predict, visualise.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hrpose {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """HRNet human pose estimation on COCO-format data."""


def _register() -> None:
    from hrpose_cli.cli import eval as eval_cmd
    from hrpose_cli.cli import export, heatmaps, oks, predict, train

    app.command("train")(_reporting_errors(train.train))
    app.command("eval")(_reporting_errors(eval_cmd.evaluate))
    app.command("predict")(_reporting_errors(predict.predict))
    app.command("visualize-heatmaps")(_reporting_errors(heatmaps.visualize_heatmaps))
    app.command("oks")(_reporting_errors(oks.oks))
    app.command("export")(_reporting_errors(export.export))


_register()


def main() -> None:
    app()
