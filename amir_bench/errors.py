"""User-facing errors: one line on stderr, exit code 2, never a traceback."""


class UserError(Exception):
    """Bad input or an impossible request; the message is shown as-is on one line."""

    exit_code = 2


class Interrupted(UserError):
    """Ctrl-C during a command; the message says what was kept and how to continue."""

    exit_code = 130
