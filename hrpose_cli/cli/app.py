"""The typer app: registers the commands and is the one place that turns HrposeError into a one-line message.

Every command gets ``--verbose/-v`` from ``_Command``: without it a user error prints one line and exits 1;
with it the traceback is shown too.
"""

from __future__ import annotations

import click
import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from hrpose_cli import __version__
from hrpose_cli.errors import HrposeError

err_console = Console(stderr=True, highlight=False)

_VERBOSE_OPTION = click.Option(
    ["--verbose", "-v"], is_flag=True, default=False, help="Show the full traceback on errors."
)


def _fail(ctx: click.Context, err: HrposeError, verbose: bool) -> None:
    if verbose:
        raise err
    err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)
    ctx.exit(1)


class _Command(TyperCommand):
    """A command that accepts -v/--verbose and reports HrposeError as one line."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params.append(_VERBOSE_OPTION)

    def invoke(self, ctx: click.Context):
        verbose = bool(ctx.params.pop("verbose", False)) or bool((ctx.obj or {}).get("verbose"))
        try:
            return super().invoke(ctx)
        except HrposeError as err:
            _fail(ctx, err, verbose)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            ctx.exit(130)


class _Group(TyperGroup):
    """Keeps the commands in the order they were registered in --help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


app = typer.Typer(
    cls=_Group,
    help="HRNet human pose estimation on COCO-format data: train, evaluate, predict, visualise.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hrpose {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ctx.obj = {"verbose": verbose}


def _register() -> None:
    from hrpose_cli.cli import eval as eval_cmd
    from hrpose_cli.cli import heatmaps, oks, predict, train

    app.command("train", cls=_Command)(train.train)
    app.command("eval", cls=_Command)(eval_cmd.evaluate)
    app.command("predict", cls=_Command)(predict.predict)
    app.command("visualize-heatmaps", cls=_Command)(heatmaps.visualize_heatmaps)
    app.command("oks", cls=_Command)(oks.oks)


_register()


def main() -> None:
    app()
