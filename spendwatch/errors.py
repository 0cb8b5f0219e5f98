"""Errors that are the user's to fix: the CLI prints their one line and exits with code 2, no traceback."""


class UserError(Exception):
    pass
