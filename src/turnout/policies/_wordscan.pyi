from collections.abc import Sequence
from typing import Generic, TypeVar

_L = TypeVar("_L")

class Matcher(Generic[_L]):
    def __init__(self, patterns: Sequence[tuple[bytes, ...]], labels: Sequence[_L]) -> None: ...
    def find(self, text: str, /) -> tuple[_L, ...]: ...

def count_newlines(text: str, /) -> int: ...
