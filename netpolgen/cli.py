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
)

EXIT_USAGE_OR_INPUT = exitcodes.INPUT_ERROR


@app.callback()
def _root() -> None:
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
    from netpolgen.commands import report

    app.command("report")(report.report_command)


_register()


def main(argv: list[str] | None = None, prog_name: str = "netpolgen") -> None:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name=prog_name, standalone_mode=True)
    except NetpolgenError as e:
        print(f"Error: {e.line()}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE_OR_INPUT) from None
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        raise SystemExit(exitcodes.INTERRUPTED) from None


# The subcommands that read an inventory: as a kubectl plugin they default to the live cluster.
CLUSTER_COMMANDS = ("generate", "diff", "report")
_INVENTORY_FLAGS = ("--inventory", "-i", "--from-cluster", "--kubeconfig", "--context")


def kubectl_args(argv: list[str]) -> list[str]:
    """``kubectl netpolgen CMD ...``: a kubectl user means the cluster of their current context,
    so generate, diff and report read the inventory from it unless the command line names one
    (``--inventory``, or ``--kubeconfig``/``--context``/``--from-cluster`` already)."""
    if not argv or argv[0] not in CLUSTER_COMMANDS or "--help" in argv:
        return argv
    given = any(a.split("=", 1)[0] in _INVENTORY_FLAGS or (a.startswith("-i") and len(a) > 2) for a in argv[1:])
    return argv if given else [argv[0], "--from-cluster", *argv[1:]]


def kubectl_main(argv: list[str] | None = None) -> None:
    """The ``kubectl-netpolgen`` entry point (kubectl runs it for ``kubectl netpolgen ...``)."""
    main(kubectl_args(list(sys.argv[1:] if argv is None else argv)), prog_name="kubectl netpolgen")


def fail(e: NetpolgenError) -> "typer.Exit":
    """Print a user error the house way and return the Exit to raise (for use in commands)."""
    print(f"Error: {e.line()}", file=sys.stderr)
    return typer.Exit(EXIT_USAGE_OR_INPUT)
