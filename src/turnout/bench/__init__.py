"""Bench: the same workflow under several policies, compared side by side."""

from turnout.bench.cases import BenchCase, load_cases
from turnout.bench.runner import BenchResult, run_bench
from turnout.bench.summary import PolicySummary, summarize

__all__ = ["BenchCase", "BenchResult", "PolicySummary", "load_cases", "run_bench", "summarize"]
