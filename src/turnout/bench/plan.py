"""What a bench was asked to do, saved with it so it can be resumed.

The plan records absolute paths to the workflow and config, the policies,
every case's inputs, the runs per case and the concurrency. ``--resume``
rebuilds the same plan and runs only what is missing: every (policy, case,
repeat) without a finished run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.bench.cases import BenchCase
from turnout.errors import ConfigError

JobKey = tuple[str, str, int]
"""(policy, case id, repeat)"""


@dataclass(frozen=True, slots=True)
class BenchPlan:
    workflow_path: Path
    config_path: Path
    policies: tuple[str, ...]
    cases: tuple[BenchCase, ...]
    runs: int
    concurrency: int
    baseline: str | None = None

    def spec(self) -> dict[str, Any]:
        return {
            "workflow_path": str(self.workflow_path.resolve()),
            "config_path": str(self.config_path.resolve()),
            "policies": list(self.policies),
            "cases": [{"id": c.id, "inputs": dict(c.inputs)} for c in self.cases],
            "runs": self.runs,
            "concurrency": self.concurrency,
            "baseline": self.baseline,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, bench_id: str) -> BenchPlan:
        try:
            return cls(
                workflow_path=Path(spec["workflow_path"]),
                config_path=Path(spec["config_path"]),
                policies=tuple(spec["policies"]),
                cases=tuple(BenchCase(str(c["id"]), dict(c["inputs"])) for c in spec["cases"]),
                runs=int(spec["runs"]),
                concurrency=int(spec.get("concurrency", 1)),
                baseline=spec.get("baseline"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bench {bench_id}: its saved plan is incomplete ({exc})") from None

    def jobs(self) -> list[JobKey]:
        """Every (policy, case, repeat), interleaved: repeat 1 of everything first."""
        return [
            (p, c.id, n) for n in range(1, self.runs + 1) for c in self.cases for p in self.policies
        ]
