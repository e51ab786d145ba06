"""The ``turnout`` command: a thin shell over the library.

Errors turnout raises on purpose print as one line on stderr with a non-zero
exit; ``--debug`` (or ``TURNOUT_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from turnout import __version__
from turnout.errors import TurnoutError

EXIT_ERROR = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="turnout")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Route every step of an agent workflow to the model it needs, and prove it."""
    ctx.obj = {"debug": debug}
    if debug:
        os.environ["TURNOUT_DEBUG"] = "1"


def _register() -> None:
    from turnout.cli.audit import audit_cmd
    from turnout.cli.bench import bench_cmd
    from turnout.cli.flag import flag_cmd
    from turnout.cli.local import local_group
    from turnout.cli.prices import prices_cmd
    from turnout.cli.report import report_group
    from turnout.cli.run import run_cmd
    from turnout.cli.suggest import suggest_cmd
    from turnout.cli.traces import traces
    from turnout.cli.whatif import whatif_cmd

    for command in (
        run_cmd,
        bench_cmd,
        traces,
        report_group,
        suggest_cmd,
        whatif_cmd,
        flag_cmd,
        audit_cmd,
        prices_cmd,
        local_group,
    ):
        cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    _register()
    debug = (
        "--debug" in (argv if argv is not None else sys.argv[1:])
        or os.environ.get("TURNOUT_DEBUG") == "1"
    )
    try:
        cli.main(args=argv, prog_name="turnout", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except TurnoutError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
