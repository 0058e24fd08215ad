"""The command-line interface: parse flags, call one library function, print.

Each subcommand lives in ``netpolgen/commands/<name>.py`` and is registered here. ``main`` turns
every ``NetpolgenError`` (a user's mistake) into the one-line ``Error: ...`` on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from netpolgen import exitcodes
from netpolgen.errors import NetpolgenError

app = typer.Typer(
    name="netpolgen",
    help="Turn observed traffic into least-privilege Kubernetes NetworkPolicies, and diff policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help and usage errors: rich's formatter costs more to import (~0.1 s) than
    # the rest of `netpolgen --help` together.
    rich_markup_mode=None,
)

EXIT_USAGE_OR_INPUT = exitcodes.INPUT_ERROR


def _print_version(value: bool) -> None:
    if value:
        from netpolgen import __version__

        print(f"netpolgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
) -> None:
    """netpolgen: observed traffic → least-privilege Kubernetes NetworkPolicies."""


def _register() -> None:
    from netpolgen.commands import generate

    app.command("generate")(generate.generate_command)
    try:  # the policy engine commands (diff, explain) live in their own modules
        from netpolgen.commands import diff, explain
    except ImportError:
        return
    app.command("diff")(diff.diff_command)
    app.command("explain")(explain.explain_command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name="netpolgen", standalone_mode=True)
    except NetpolgenError as e:
        print(f"Error: {e.line()}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE_OR_INPUT) from None
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        raise SystemExit(exitcodes.INTERRUPTED) from None


def fail(e: NetpolgenError) -> "typer.Exit":
    """Print a user error the house way and return the Exit to raise (for use in commands)."""
    print(f"Error: {e.line()}", file=sys.stderr)
    return typer.Exit(EXIT_USAGE_OR_INPUT)
