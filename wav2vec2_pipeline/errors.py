"""One error type for every input problem a user can fix, and the CLI wrapper that reports it."""

import sys
from collections.abc import Callable


class PipelineError(Exception):
    """Bad input or state a user can fix; the message says what was wrong and what to do."""


def run_cli(main: Callable[[], None]) -> None:
    """Run a stage's main; turn a PipelineError into one readable line and exit status 2."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
