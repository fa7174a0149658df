"""Errors that end a command with one line on stderr: usage problems exit 2, runtime failures exit 1."""


class CLIError(Exception):
    """A runtime failure the user can act on (exit code 1)."""

    exit_code = 1


class UsageError(CLIError):
    """Bad arguments or input the user must change (exit code 2)."""

    exit_code = 2
