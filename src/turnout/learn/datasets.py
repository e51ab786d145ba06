"""Graded tasks with known answers, for building outcome sets you can regenerate.

Each :class:`Task` is a prompt plus a grader that says whether an answer is right.
The tasks are made by code from a seed (so a set is regenerated, never frozen):

==============  ==========================================================
kind            what is asked, and how it is graded
==============  ==========================================================
add             a one-step word problem (a + b); the reply's first number
change          a two-step word problem (m - n * p); the reply's first number
sentiment       a review to label positive / negative; the label word, alone
email           an email address to pull out of a sentence; the address
code            a small Python function; its tests run in a subprocess
==============  ==========================================================

:func:`tasks` makes them; ``benchmarks/make_outcomes.py`` runs each task on
every model of a pool and writes one outcome line per (task, model).
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("add", "change", "sentiment", "email", "code")

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    kind: str
    prompt: str
    grade: Callable[[str], bool]
    max_tokens: int = 48


def first_number(text: str) -> float | None:
    m = _NUMBER.search(text.replace(",", ""))
    return None if m is None else float(m.group())


def _number_grader(expected: int) -> Callable[[str], bool]:
    return lambda answer: first_number(answer) == expected


_NAMES = ("Sam", "Maria", "Ali", "Priya", "Tom", "Lena", "Kofi", "Yuki")
_THINGS = ("marbles", "apples", "stickers", "books", "coins", "shells")


def _add(rng: random.Random, i: int) -> Task:
    name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    prompt = (
        f"{name} has {a} {thing} and finds {b} more. How many {thing} does {name} have now? "
        "Reply with only the number."
    )
    return Task(f"add-{i}", "add", prompt, _number_grader(a + b))


def _change(rng: random.Random, i: int) -> Task:
    name = rng.choice(_NAMES)
    price, count = rng.randint(2, 9), rng.randint(2, 6)
    paid = ((price * count) // 10 + 1) * 10 + rng.choice((0, 10, 40))
    prompt = (
        f"A shop sells pens at {price} dollars each. {name} buys {count} pens and pays with "
        f"{paid} dollars. How many dollars of change does {name} get back? "
        "Reply with only the number."
    )
    return Task(f"change-{i}", "change", prompt, _number_grader(paid - price * count))


_GOOD = ("loved", "enjoyed", "was delighted by", "would happily recommend", "adored")
_BAD = ("hated", "regretted buying", "was disappointed by", "would never recommend", "loathed")
_ITEMS = ("this blender", "the hotel", "the new phone", "this film", "the restaurant")


def _sentiment(rng: random.Random, i: int) -> Task:
    positive = rng.random() < 0.5
    verb = rng.choice(_GOOD if positive else _BAD)
    review = f"I {verb} {rng.choice(_ITEMS)}."
    label, other = ("positive", "negative") if positive else ("negative", "positive")
    prompt = (
        "Classify the sentiment of this review as positive or negative. "
        f"Reply with one word.\nReview: {review}"
    )

    def grade(answer: str) -> bool:
        low = answer.lower()
        return label in low and other not in low

    return Task(f"sentiment-{i}", "sentiment", prompt, grade, max_tokens=8)


_DOMAINS = ("example.com", "mail.org", "corp.net", "school.edu")


def _email(rng: random.Random, i: int) -> Task:
    user = rng.choice(_NAMES).lower() + str(rng.randint(1, 99))
    address = f"{user}@{rng.choice(_DOMAINS)}"
    text = rng.choice((
        f"Please send the invoice to {address} before Friday.",
        f"For questions, write to {address} or call the front desk.",
        f"The form was submitted by {address} yesterday at noon.",
    ))  # fmt: skip
    prompt = f"Extract the email address from the text. Reply with only the address.\nText: {text}"
    return Task(f"email-{i}", "email", prompt, lambda answer: address in answer, max_tokens=24)


_CODE = (
    ("add_numbers", "returns the sum of two numbers a and b",
     "assert f(2, 3) == 5\nassert f(-1, 1) == 0"),
    ("reverse_text", "returns the string s reversed",
     "assert f('abc') == 'cba'\nassert f('') == ''"),
    ("count_vowels", "returns how many vowels (a, e, i, o, u) the lowercase string s has",
     "assert f('banana') == 3\nassert f('xyz') == 0"),
    ("largest", "returns the largest number in the non-empty list xs",
     "assert f([3, 9, 2]) == 9\nassert f([-5]) == -5"),
    ("is_even", "returns True when the integer n is even, else False",
     "assert f(4) is True\nassert f(7) is False"),
    ("factorial", "returns n! for a non-negative integer n",
     "assert f(0) == 1\nassert f(5) == 120"),
)  # fmt: skip


def run_python_tests(code: str, name: str, tests: str, timeout_s: float = 5.0) -> bool:
    """Run ``code`` then ``tests`` (with ``f`` bound to ``name``) in a fresh interpreter."""
    program = f"{code}\n\nf = {name}\n{tests}\n"
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", program],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _code(rng: random.Random, i: int) -> Task:
    name, what, tests = rng.choice(_CODE)
    prompt = (
        f"Write a Python function named {name} that {what}. "
        "Reply with only the code in one ```python block."
    )

    def grade(answer: str) -> bool:
        m = _FENCE.search(answer)
        code = m.group(1) if m else answer
        return f"def {name}" in code and run_python_tests(code, name, tests)

    return Task(f"code-{i}", "code", prompt, grade, max_tokens=160)


_MAKERS: dict[str, Callable[[random.Random, int], Task]] = {
    "add": _add,
    "change": _change,
    "sentiment": _sentiment,
    "email": _email,
    "code": _code,
}


def tasks(n: int, *, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[Task]:
    """``n`` tasks, the kinds in turn, made from ``seed`` (same seed, same tasks)."""
    rng = random.Random(seed)
    return [_MAKERS[kinds[i % len(kinds)]](rng, i) for i in range(n)]


# -- a planted signal -----------------------------------------------------------------

_ANIMALS = ("otter", "heron", "badger", "lynx", "walrus", "gecko", "falcon", "beaver", "moose",
            "salamander", "pelican", "hedgehog")  # fmt: skip
_CITIES = ("Lisbon", "Osaka", "Nairobi", "Quito", "Oslo", "Hanoi", "Perth", "Krakow", "Lima",
           "Tunis", "Dublin", "Seoul")  # fmt: skip
_ASKS = ("Tell me three facts about the {x}.", "Write a short note about the {x}.",
         "What should a visitor know about the {x}?", "Describe the {x} in two sentences.",
         "Give a brief overview of the {x} for a school report.")  # fmt: skip


def planted_outcomes(
    n: int,
    *,
    seed: int = 0,
    models: tuple[str, str] = ("cheap", "strong"),
    noise: float = 0.0,
    animals: float = 0.85,
) -> list[dict[str, object]]:
    """Outcome lines with a planted signal: the cheap model passes exactly on prompts
    about animals and fails on prompts about cities; the strong one always passes.

    The two kinds share their templates, so nothing but the topic tells them apart
    (the keyword heuristics score them alike). ``animals`` is their share; ``noise``
    flips that share of the cheap model's outcomes."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for i in range(n):
        animal = rng.random() < animals
        x = rng.choice(_ANIMALS if animal else _CITIES)
        prompt = rng.choice(_ASKS).format(x=x if animal else f"city of {x}")
        cheap_ok = animal != (rng.random() < noise)
        cost = 0.001 * (1 + len(prompt) / 100)
        out.append(
            {
                "id": f"p{i}",
                "prompt": prompt,
                "model": models[0],
                "passed": cheap_ok,
                "cost_usd": round(cost, 6),
            }
        )
        out.append(
            {
                "id": f"p{i}",
                "prompt": prompt,
                "model": models[1],
                "passed": True,
                "cost_usd": round(cost * 15, 6),
            }
        )
    return out
