"""The ``turnout`` command: a thin shell over the library.

Every error prints as one line, ``error: ...``, on stderr. Exit codes: 2 for
usage, configuration and other errors turnout raises on purpose (nothing was
run, or nothing more could be), 1 for a run or bench that ran and failed, 130
when interrupted (``turnout serve``: 0, a server's normal stop). ``--debug`` (or
``TURNOUT_DEBUG=1``) also shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from turnout import __version__
from turnout.errors import TurnoutError

EXIT_ERROR = 2


# Commands are imported when used, so `turnout run` does not pay for the report code.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("turnout.cli.run:run_cmd", "Run WORKFLOW.yaml once under a policy and show each step."),
    "chat": (
        "turnout.cli.chat:chat_cmd",
        "Send one prompt through a policy and show what happened.",
    ),
    "bench": ("turnout.cli.bench:bench_cmd", "Run a workflow N times under each policy, compare."),
    "traces": ("turnout.cli.traces:traces", "Inspect recorded runs, their steps and every call."),
    "report": ("turnout.cli.report:report_group", "Bench HTML report; weekly spend; A/B results."),
    "suggest": ("turnout.cli.suggest:suggest_cmd", "Propose a per_step policy from a bench."),
    "whatif": ("turnout.cli.whatif:whatif_cmd", "Estimate recorded steps' cost under a policy."),
    "flag": ("turnout.cli.flag:flag_cmd", "Judge a step's routing after the fact."),
    "audit": ("turnout.cli.audit:audit_cmd", "List overridden routing decisions."),
    "prices": ("turnout.cli.prices:prices_cmd", "The bundled price sheet, dated and sourced."),
    "local": ("turnout.cli.local:local_group", "The embedded local models."),
    "keys": ("turnout.cli.keys:keys_group", "Virtual keys for the gateway: budgets, limits."),
    "serve": ("turnout.cli.serve:serve_cmd", "Serve an OpenAI-compatible API routed by policy."),
    "learn": ("turnout.cli.learn:learn_group", "Train a router on outcomes; export, eval, score."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target[0].partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="turnout")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Route every step of an agent workflow to the model it needs, and prove it."""
    ctx.obj = {"debug": debug}
    if debug:
        os.environ["TURNOUT_DEBUG"] = "1"


def main(argv: list[str] | None = None) -> int:
    debug = (
        "--debug" in (argv if argv is not None else sys.argv[1:])
        or os.environ.get("TURNOUT_DEBUG") == "1"
    )
    try:
        cli.main(args=argv, prog_name="turnout", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        return EXIT_ERROR
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return EXIT_ERROR
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
