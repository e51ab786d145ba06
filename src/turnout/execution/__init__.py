"""Execution: carrying a policy's decision out against the providers.

One attempt pipeline serves streamed and unstreamed calls; each strategy
(single, fallback, cascade, ensemble) is one module, each cross-cutting concern
(concurrency limit, breaker, budget, cache, timeouts, retry) one wrapper.
"""
