"""The user-facing error type and the documented exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    PASSED = 0
    THRESHOLD_FAILED = 1
    BAD_INPUT = 2
    HARNESS_ERROR = 3
    MASTER_LOST = 4  # a worker whose master went silent mid-run: its partition's results alone


class InputError(Exception):
    """Bad user input: one line saying where, what is wrong, and the fix.

    Raised before any load is sent; the harness prints it and exits with ExitCode.BAD_INPUT.
    """

    def __init__(self, where: str, problem: str, fix: str) -> None:
        self.where = where
        self.problem = problem
        self.fix = fix
        super().__init__(f"{where}: {problem}; fix: {fix}")
