"""The compiled keyword scanner (``turnout.policies._wordscan``); the rest of the build
is declared in pyproject.toml.

The extension is optional: where no C compiler is found the install goes on, and
turnout uses its pure-Python scanner (same results; decisions of the prompt-reading
policies about twice as slow) and logs a warning saying so.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "turnout.policies._wordscan",
            ["src/turnout/policies/_wordscan.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
