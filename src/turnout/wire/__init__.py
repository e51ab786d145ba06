"""The OpenAI chat-completions wire format, both directions.

A client calling a provider and a server answering one (the gateway, the fake
server in :mod:`turnout.testing`) use the same modules: :mod:`.requests` (request
bodies), :mod:`.responses` (completion and chunk bodies), :mod:`.errors` (error
bodies) and :mod:`.jsonio` (JSON in and out). Pure functions, no I/O.
"""
