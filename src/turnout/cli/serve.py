"""``turnout serve``: the OpenAI-compatible gateway.

turnout serve -c turnout.yaml [--host 127.0.0.1] [--port 8000] [--store URL]
turnout serve                   # no config: the embedded local pool, offline
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from turnout.errors import ConfigError

if TYPE_CHECKING:
    from turnout.config.settings import Settings


@click.command("serve")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The turnout.yaml (default: ./turnout.yaml if present, else the local pool).",
)
@click.option("--host", default=None, help="Interface to listen on [gateway.host: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="[gateway.port: 8000]")
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    envvar="TURNOUT_STORE",
    help="Trace store, where the keys are too: a SQLite path, sqlite:///PATH or "
    "postgresql://USER@HOST/DB [default: $TURNOUT_STORE, else storage: of the config "
    "(relative to it), else .turnout/traces.db].",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes sharing the port (SO_REUSEPORT); metrics aggregate across them.",
)
@click.option("--reuse-port", is_flag=True, hidden=True)
def serve_cmd(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    store_url: str | None,
    workers: int,
    reuse_port: bool,
) -> None:
    """Serve an OpenAI-compatible API that routes every request by policy.

    Ctrl-C or SIGTERM stops it: no new connections, requests in flight finish (up to
    gateway.shutdown_timeout_s), traces are flushed, and it exits 0."""
    from turnout.gateway.config import GatewayConfig
    from turnout.gateway.server import Gateway, run

    settings = _settings(config_path)
    config = GatewayConfig.from_settings(settings)
    config.auth_for(host or config.host)  # refuse `auth: none` off loopback before starting
    from turnout.workflows.keys import require_keys

    require_keys(settings, settings.models)  # any pool model may be asked for
    where = settings.source if settings.path else "the embedded local pool"
    from turnout.gateway.app import WORKER_ENV, WORKERS_ENV

    worker = os.environ.get(WORKER_ENV)  # set in a worker of --workers N: its parent spoke
    if worker is None:
        _check_admin_key(config.admin_key_env)
    if workers > 1:
        from turnout.gateway.workers import run_workers

        if (port if port is not None else config.port) == 0:
            raise ConfigError("--workers needs a fixed --port (they share it)", field="--port")
        if (
            config.auth_for(host or config.host) == "keys"
            and settings.executor.get("state") != "redis"
        ):
            click.echo(
                f"turnout serve: warning: executor.state is memory, so each of the {workers} "
                f"workers keeps its own rate limits and budgets (a key may get up to {workers}x "
                "its limits); set executor.state: redis to share them",
                err=True,
            )
        raise SystemExit(run_workers(workers))

    def ready(gateway: Gateway) -> None:
        if worker not in (None, "0"):
            return  # worker 0 speaks for every worker
        policy = config.default_policy or "none"
        auth = config.auth_for(host or config.host)
        count = int(os.environ.get(WORKERS_ENV) or 1)
        processes = f", {count} workers" if count > 1 else ""
        url = gateway.base_url
        bound = gateway.listening
        where_to = url if bound.startswith("127.0.0.1:") else f"{bound} ({url} from here)"
        notes = "; ".join(gateway.notes())
        click.echo(
            f"turnout serve: {where}, default policy {policy}, auth {auth}{processes}; "
            f"{notes}; listening on {where_to}",
            err=True,
        )

    _fresh_metrics()
    run(settings, host=host, port=port, store=store_url, on_ready=ready, reuse_port=reuse_port)


ADMIN_KEY_MIN_CHARS = 16


def _check_admin_key(env: str) -> None:
    """Warn (never showing it) of an admin key short enough to be guessed."""
    admin = os.environ.get(env)
    if admin and len(admin) < ADMIN_KEY_MIN_CHARS:
        click.echo(
            f"turnout serve: warning: the admin key in {env} is shorter than "
            f"{ADMIN_KEY_MIN_CHARS} characters, easy to guess; make one with python -c "
            "'import secrets; print(secrets.token_urlsafe(32))'",
            err=True,
        )


def _fresh_metrics() -> None:
    """One gateway process given ``PROMETHEUS_MULTIPROC_DIR`` (not a worker, whose parent
    did this) starts its metrics from zero, as a process without it does."""
    from turnout.gateway.app import WORKER_ENV
    from turnout.observability.metrics import MULTIPROC_ENV, start_afresh

    directory = os.environ.get(MULTIPROC_ENV)
    if directory and WORKER_ENV not in os.environ and os.path.isdir(directory):
        start_afresh(directory)


def _settings(config_path: Path | None) -> Settings:
    from turnout.config.loader import load_settings
    from turnout.gateway.local_pool import local_settings

    if config_path is None:
        default = Path("turnout.yaml")
        if not default.exists():
            return local_settings()
        config_path = default
    if not config_path.exists():
        raise ConfigError(f"{config_path}: no such file")
    return load_settings(config_path)
