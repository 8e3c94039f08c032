"""Build hook for the one compiled part: rmas.audit._speedups (metadata is in pyproject.toml).

Optional: without a C compiler or OpenSSL's headers the build goes on without it, and rmas
does the same work in Python (rmas/audit/_speedups.c says what and why). CI checks that it was
built (tests/audit/test_speedups.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rmas.audit._speedups",
            sources=["rmas/audit/_speedups.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
