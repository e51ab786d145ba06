"""Lua scripts in Redis by EVALSHA, in one round trip however many calls.

redis-py's ``Script`` asks ``SCRIPT EXISTS`` before every pipeline that runs one: a
second round trip each time. :class:`Lua` sends ``EVALSHA`` directly, alone or many in
one pipeline, and only when Redis answers ``NOSCRIPT`` (restarted, ``SCRIPT FLUSH``)
loads the script and sends once more the calls it refused, so nothing runs twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

Call = tuple[Sequence[str], Sequence[Any]]
"""One script call: its keys, its args."""


class Lua:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One call; its error raised."""
        return (await self.many(client, [(keys, args)]))[0]

    async def many(
        self,
        client: Redis,
        calls: Sequence[Call],
        *,
        first: Callable[[Pipeline], object] | None = None,
    ) -> list[Any]:
        """Every call in one round trip, replies in order; ``first`` queues commands
        ahead of the calls in the same pipeline (their replies come first). The first
        error reply is raised, after the lost scripts are sent again."""
        replies = await self._send(client, calls, first)
        head = len(replies) - len(calls)
        from redis.exceptions import NoScriptError

        lost = [i for i, r in enumerate(replies[head:]) if isinstance(r, NoScriptError)]
        if lost:
            await client.script_load(self.source)
            again = await self._send(client, [calls[i] for i in lost], None)
            for i, reply in zip(lost, again, strict=True):
                replies[head + i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _send(
        self, client: Redis, calls: Sequence[Call], first: Callable[[Pipeline], object] | None
    ) -> list[Any]:
        if len(calls) == 1 and first is None:
            from redis.exceptions import ResponseError

            keys, args = calls[0]
            try:
                return [await client.evalsha(self.sha, len(keys), *keys, *args)]
            except ResponseError as exc:  # NOSCRIPT among them: handed back, as in a pipeline
                return [exc]
        async with client.pipeline(transaction=False) as pipe:
            if first is not None:
                first(pipe)
            for keys, args in calls:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))
