"""``turnout keys``: virtual keys for the team gateway (create, list, show, update, revoke).

A new key is printed once, by ``keys create``; the store keeps only its hash. Keys live
in the trace store's database, so every gateway replica that writes traces there also
sees every key. The store is the gateways': ``--store`` (or ``TURNOUT_STORE``), else
``storage:`` in the config (``-c``, ``./turnout.yaml`` when it exists), else
``.turnout/traces.db``. With a config, the policies and models a key is bound to must be
its own, and a change is announced on its Redis (``executor.state: redis``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from turnout.cli.output import make_console
from turnout.cli.traces import opened_store
from turnout.config.settings import Settings
from turnout.errors import ConfigError
from turnout.keys.model import Period, VirtualKey, check_scopes, key_changes
from turnout.keys.store import KeyStore, key_summary

PERIODS = [p.value for p in Period]


_FLAGS = {
    "name": "--name", "budget_usd": "--budget-usd", "period": "--period", "rpm": "--rpm",
    "tpm": "--tpm", "policies": "--policies", "models": "--models", "expires": "--expires",
}  # fmt: skip


@contextmanager
def _as_options() -> Iterator[None]:
    """The key store's errors naming the command's options, not the record's fields (in
    the message too: "give budget_usd too" is "give --budget-usd too" here)."""
    try:
        yield
    except ConfigError as exc:
        if exc.field in _FLAGS:
            detail = exc.detail.replace("budget_usd", _FLAGS["budget_usd"])
            raise ConfigError(detail, field=_FLAGS[exc.field]) from None
        raise


def _redis(url: str | None) -> str | None:
    """``--redis``, checked before anything is written."""
    if url is None:
        return None
    from turnout.config.schema import check_redis_url

    try:
        return check_redis_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--redis") from None


def _changes(**given: object) -> dict[str, Any]:
    """The options given (those not None), read by the rules the admin API reads its
    JSON by (:func:`~turnout.keys.model.key_changes`)."""
    with _as_options():
        return key_changes({field: value for field, value in given.items() if value is not None})


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The gateways' turnout.yaml: its storage:, policies, models and Redis "
    "[default: ./turnout.yaml when it exists].",
)


@dataclass(frozen=True)
class _Setup:
    """Where a command's keys live, and what the gateways' config says of them."""

    store_url: str | None
    settings: Settings | None

    @classmethod
    def of(cls, config_path: Path | None, store_url: str | None) -> _Setup:
        path = config_path or Path("turnout.yaml")
        if config_path is None and not path.is_file():
            return cls(store_url, None)
        from turnout.config.loader import load_settings

        settings = load_settings(path)
        return cls(store_url or settings.storage, settings)

    def existing(self, what: str = "") -> None:
        """Refuse a SQLite store that does not exist, rather than create an empty one, for
        a command that only reads keys or changes one."""
        from turnout.cli.flag import existing_store

        existing_store(self.store_url, what, why="no keys there (is --store, TURNOUT_STORE "
                       "or the config's storage: the gateways'?)")  # fmt: skip

    def check(self, changes: dict[str, Any]) -> None:
        """The policies and models a key is bound to must be the gateways' (with no config
        to check them against, a warning: such a key may be of no use)."""
        if self.settings is not None:
            with _as_options():
                check_scopes(changes, policies=self.settings.policies, models=self.settings.models)
            return
        given = [_FLAGS[f] for f in ("policies", "models") if changes.get(f)]
        if given:
            click.echo(
                f"warning: no turnout.yaml found: {'/'.join(given)} not checked against the "
                "gateways' policies and models; pass -c turnout.yaml",
                err=True,
            )

    def redis(self, url: str | None, prefix: str | None) -> tuple[str | None, str]:
        """``--redis`` and ``--redis-prefix``, else the config's shared state."""
        from turnout.config.schema import redis_of

        executor = self.settings.executor if self.settings is not None else {}
        config_url, config_prefix, _ = redis_of(executor)
        if url is None and executor.get("state") == "redis":
            url = config_url
        return _redis(url), prefix or config_prefix


redis_option = click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    envvar="TURNOUT_REDIS_URL",
    help="The gateways' Redis, to tell every replica of the change at once (without it, "
    "they see it within their key cache's lifetime, 30 s) [default: $TURNOUT_REDIS_URL, "
    "else the config's executor.redis_url when executor.state is redis].",
)
redis_prefix_option = click.option(
    "--redis-prefix",
    metavar="PREFIX",
    envvar="TURNOUT_REDIS_PREFIX",
    help="The gateways' Redis key prefix [default: $TURNOUT_REDIS_PREFIX, else the "
    "config's executor.redis_prefix, else turnout].",
)
keys_store_option = click.option(
    "--store",
    "store_url",
    metavar="URL",
    envvar="TURNOUT_STORE",
    help="Where the keys are (the gateways' trace store): a SQLite file path, "
    "sqlite:///PATH or postgresql://USER@HOST/DB [default: $TURNOUT_STORE, else storage: "
    "of the config (relative to it), else .turnout/traces.db].",
)


def _announce(redis_url: str | None, prefix: str) -> None:
    """Bump the key-change generation the gateways read before each request."""
    if not redis_url:
        click.echo(
            "note: no Redis given (--redis, or a turnout.yaml with executor.state: redis): "
            "gateways see the change within 30 s",
            err=True,
        )
        return
    import asyncio

    async def bump() -> None:
        from redis.asyncio import Redis

        from turnout.keys.cache import RedisKeyEvents

        client = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            events = RedisKeyEvents(client, prefix=f"{prefix}:keys", timeout_s=2)
            await events.bump()
            if events.degrader.failures:
                click.echo(
                    "warning: Redis unreachable; gateways see the change within 30 s", err=True
                )
        finally:
            await client.aclose()

    asyncio.run(bump())


def _short_time(iso: str | None) -> str:
    """An ISO time as a listing shows it: the date alone at midnight UTC, no seconds."""
    if iso is None:
        return "—"
    date, _, time = iso.partition("T")
    time = time.removesuffix("+00:00")
    return date if time in ("", "00:00:00") else f"{date} {time[:5]}"


def _show(key: VirtualKey, as_json: bool, spend: Mapping[str, Any] | None = None) -> None:
    summary = {**key_summary(key), **(spend or {})}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    width = max(len(k) for k in summary)
    for field, value in summary.items():
        if isinstance(value, list):
            value = ", ".join(value) or "(any)"
        click.echo(f"{field:<{width}}  {'—' if value is None else value}")


def _limits(
    fn: Callable[..., Any],
) -> Callable[..., Any]:
    options = [
        click.option(
            "--budget-usd",
            "budget_usd",
            metavar="USD",
            help="Spend cap per period ('none': no budget).",
        ),
        click.option(
            "--period",
            type=click.Choice(PERIODS),
            help="Budget period, in UTC; only with a budget [default: month].",
        ),
        click.option("--rpm", metavar="N", help="Requests per minute (0 or 'none': no limit)."),
        click.option(
            "--tpm",
            metavar="N",
            help="Tokens per minute, prompt + max_tokens (0 or 'none': no limit).",
        ),
        click.option("--policies", metavar="A,B", help="Policies the key may use (default any)."),
        click.option("--models", metavar="A,B", help="Models the key may use (default any)."),
        click.option(
            "--expires",
            metavar="DATE",
            help="Expiry: a date (00:00 UTC of that day, e.g. 2026-12-31), an ISO "
            "8601 time, or 'never'.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("keys")
def keys_group() -> None:
    """Virtual keys for the team gateway: each with a budget, rate limits and scopes."""


@keys_group.command("create")
@click.option("--name", required=True, help="The key's name (a tag on its traces).")
@_limits
@keys_store_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the key and its record as JSON.")
def create_cmd(
    name: str,
    budget_usd: str | None,
    period: str | None,
    rpm: str | None,
    tpm: str | None,
    policies: str | None,
    models: str | None,
    expires: str | None,
    store_url: str | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Create a key and print it, once: it cannot be shown again."""
    setup = _Setup.of(config_path, store_url)
    changes = _changes(budget_usd=budget_usd, period=period, rpm=rpm, tpm=tpm,
                       policies=policies, models=models, expires=expires)  # fmt: skip
    setup.check(changes)
    with opened_store(setup.store_url) as store, _as_options():
        secret, key = KeyStore(store).create(name, **changes)
    if as_json:
        click.echo(json.dumps({"key": secret, **key_summary(key)}, indent=2))
        return
    click.echo(secret)
    click.echo(f"key {key.name!r} created; keep it now, it is not stored and cannot be shown again",
               err=True)  # fmt: skip


@keys_group.command("list")
@keys_store_option
@config_option
@click.option("--active", is_flag=True, help="Only keys usable now: leave out revoked and "
              "expired ones.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON list.")
def list_cmd(store_url: str | None, config_path: Path | None, active: bool, as_json: bool) -> None:
    """Every key, with its limits and status (never the key itself)."""
    setup = _Setup.of(config_path, store_url)
    setup.existing()
    with opened_store(setup.store_url) as store:
        keys = KeyStore(store).list(active=active)
    summaries = [key_summary(k) for k in keys]
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
        return
    if not summaries:
        click.echo("no keys (create one with `turnout keys create --name NAME`)")
        return
    table = Table(box=None)
    for column in ("name", "prefix", "status", "budget", "rpm", "tpm", "policies", "models",
                   "expires"):  # fmt: skip
        table.add_column(column)
    for s in summaries:
        budget = f"${s['budget_usd']}/{s['period']}" if s["budget_usd"] is not None else "—"
        table.add_row(
            s["name"], s["prefix"] + "…", s["status"], budget, str(s["rpm"] or "—"),
            str(s["tpm"] or "—"), ", ".join(s["policies"]) or "(any)",
            ", ".join(s["models"]) or "(any)", _short_time(s["expires_at"]),
        )  # fmt: skip
    make_console().print(table)  # piped, wide enough that no value is cut


@keys_group.command("show")
@click.argument("name")
@keys_store_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def show_cmd(name: str, store_url: str | None, config_path: Path | None, as_json: bool) -> None:
    """One key's record."""
    setup = _Setup.of(config_path, store_url)
    setup.existing(f"no key named {name!r}: ")
    with opened_store(setup.store_url) as store:
        keys = KeyStore(store)
        key = keys.require(name)
        spend = keys.spend(key)
    _show(key, as_json, spend)


@keys_group.command("update")
@click.argument("name")
@_limits
@keys_store_option
@config_option
@redis_option
@redis_prefix_option
@click.option("--json", "as_json", is_flag=True, help="Print the changed record as JSON.")
def update_cmd(
    name: str,
    budget_usd: str | None,
    period: str | None,
    rpm: str | None,
    tpm: str | None,
    policies: str | None,
    models: str | None,
    expires: str | None,
    store_url: str | None,
    config_path: Path | None,
    redis_url: str | None,
    redis_prefix: str | None,
    as_json: bool,
) -> None:
    """Change a key's limits; options left out stay as they are. --budget-usd none,
    --expires never and an empty --policies '' (or --models '') clear them; --rpm 0 and
    --tpm 0 remove a rate limit. A revoked key cannot be changed."""
    changes = _changes(budget_usd=budget_usd, period=period, rpm=rpm, tpm=tpm,
                       policies=policies, models=models, expires=expires)  # fmt: skip
    if not changes:
        raise ConfigError("nothing to change: give at least one option", field="keys update")
    setup = _Setup.of(config_path, store_url)
    setup.check(changes)
    url, prefix = setup.redis(redis_url, redis_prefix)
    setup.existing(f"no key named {name!r}: ")
    with opened_store(setup.store_url) as store, _as_options():
        key = KeyStore(store).update(name, **changes)
    _announce(url, prefix)
    _show(key, as_json)


@keys_group.command("revoke")
@click.argument("name")
@keys_store_option
@config_option
@redis_option
@redis_prefix_option
def revoke_cmd(
    name: str,
    store_url: str | None,
    config_path: Path | None,
    redis_url: str | None,
    redis_prefix: str | None,
) -> None:
    """Revoke a key for good (with the gateways' Redis, from --redis or the config, every
    replica refuses it at once)."""
    setup = _Setup.of(config_path, store_url)
    url, prefix = setup.redis(redis_url, redis_prefix)
    setup.existing(f"no key named {name!r}: ")
    with opened_store(setup.store_url) as store:
        key = KeyStore(store).revoke(name)
    _announce(url, prefix)
    click.echo(f"key {key.name!r} revoked")
