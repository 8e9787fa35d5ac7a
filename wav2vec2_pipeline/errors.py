"""One error type for every input problem a user can fix, and the command-line plumbing that reports it."""

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Iterable
from typing import NoReturn

USAGE_ERROR = 2
"""Exit status for bad input, as argparse uses for bad arguments."""


class PipelineError(Exception):
    """Bad input or state a user can fix; the message says what was wrong and what to do."""


def require(checks: Iterable[tuple[bool, str]]) -> None:
    """Raise the message of the first check that fails: an options class's checks, listed in one place."""
    for ok, message in checks:
        if not ok:
            raise PipelineError(message)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one `error: ...` line (no usage dump), like every other input error."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (--help lists the options)", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def run_cli(main: Callable[[], None]) -> None:
    """Run a stage's main; turn a PipelineError into one readable line and exit status 2."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USAGE_ERROR)
    except BrokenPipeError:  # `| head`: the reader has gone; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: what was finished is kept, and the same command goes on from there", file=sys.stderr)
        sys.exit(130)


def command_line() -> str:
    """This process's command as a user would retype it: what an unfinished run tells them to run again."""
    return shlex.join(["python3", *sys.argv])
