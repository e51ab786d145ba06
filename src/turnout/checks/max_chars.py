"""``max_chars``: the output text is at most N characters long (Unicode code points)."""

from __future__ import annotations

from dataclasses import dataclass

from turnout.types import CheckResult


@dataclass(frozen=True, slots=True)
class MaxChars:
    """Passes when ``len(text) <= limit``."""

    limit: int
    required: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise ValueError(f"limit must be an integer, got {type(self.limit).__name__}")
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")
        if not self.name:
            object.__setattr__(self, "name", f"max_chars[{self.limit}]")

    def run(self, text: str, value: object) -> CheckResult:
        n = len(text)
        if n > self.limit:
            return CheckResult(
                self.name, False, f"{n} chars, over the limit of {self.limit}", self.required
            )
        return CheckResult(self.name, True, f"{n} of {self.limit} chars", self.required)
