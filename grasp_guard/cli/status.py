"""Exit statuses of `grasp-guard`."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1  # an operation failed (e.g. some images could not be protected)
    USAGE = 2  # bad command line (argparse's own status)
    INTERRUPTED = 130
