"""The command-line interface: parse flags, call one library function, print.

Each subcommand lives in ``netpolgen/commands/<name>.py`` and is registered here. ``main`` turns
every ``NetpolgenError`` (a user's mistake) into the one-line ``Error: ...`` on stderr and the
exit code of its kind (``exitcodes``: input 2, no traffic 4, output 5). Nothing a user feeds in
gets a traceback: anything else is a bug, reported as one line and exit 70 too, and ``--debug``
(or ``NETPOLGEN_DEBUG=1``) shows the traceback. SIGINT and SIGTERM unwind the run (so that
partial output is removed) and exit 130.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

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



_debug = os.environ.get("NETPOLGEN_DEBUG") == "1"


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """``name`` from click and from the copy of click recent typer versions carry, among the
    modules already loaded (an exception can only come from a module that is; importing click
    here would cost every run its start-up)."""
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def _print_version(value: bool) -> None:
    if value:
        from netpolgen import __version__

        print(f"netpolgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error (for bug reports)."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
) -> None:
    """netpolgen: observed traffic → least-privilege Kubernetes NetworkPolicies."""
    global _debug
    _debug = _debug or debug


def _register() -> None:
    from netpolgen.commands import generate

    app.command("generate")(generate.generate_command)
    from netpolgen.commands import diff, explain

    app.command("diff")(diff.diff_command)
    app.command("explain")(explain.explain_command)
    from netpolgen.commands import report

    app.command("report")(report.report_command)


_register()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as for Ctrl-C: output staged
    in a temporary directory is removed and the previous output stays as it was."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def _install_signal_handlers() -> None:
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _on_sigterm)
    if hasattr(signal, "SIGXFSZ"):
        # A file-size limit (ulimit -f) would kill the process mid-write by default; ignored,
        # the write fails with EFBIG instead and is reported as an output error.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _error(message: str) -> None:
    if _debug:
        traceback.print_exc(file=sys.stderr)
    print(f"Error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None, prog_name: str = "netpolgen") -> None:
    """Console-script entry point."""
    _install_signal_handlers()
    try:
        code = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except NetpolgenError as e:
        _error(e.line())
        raise SystemExit(e.exit_code) from None
    except (KeyboardInterrupt, typer.Abort):
        _error("interrupted")
        raise SystemExit(exitcodes.INTERRUPTED) from None
    except BrokenPipeError:  # stdout closed early (| head): not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        raise SystemExit(exitcodes.OK) from None
    except MemoryError:
        _error("out of memory (see the README's limits: --max-record-size, --max-decompressed-size)")
        raise SystemExit(exitcodes.INTERNAL_ERROR) from None
    except RecursionError:
        _error("input nested too deeply to read")
        raise SystemExit(exitcodes.INPUT_ERROR) from None
    except Exception as e:
        if isinstance(e, _click_classes("ClickException")):  # a bad command line, worded by click
            e.show()  # type: ignore[attr-defined]
            raise SystemExit(e.exit_code) from None  # type: ignore[attr-defined]
        if isinstance(e, _click_classes("Abort")):
            _error("interrupted")
            raise SystemExit(exitcodes.INTERRUPTED) from None
        # a bug: one line (and the traceback with --debug)
        _error(f"internal error: {type(e).__name__}: {e} (a bug in netpolgen; --debug shows the traceback)")
        raise SystemExit(exitcodes.INTERNAL_ERROR) from None
    if code == exitcodes.INTERRUPTED:  # typer turns Ctrl-C (and so SIGTERM) into Exit(130)
        print("Error: interrupted", file=sys.stderr)
    raise SystemExit(code if isinstance(code, int) else exitcodes.OK)


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
    _error(e.line())
    return typer.Exit(e.exit_code)
