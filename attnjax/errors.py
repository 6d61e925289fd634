"""The one exception type that command lines turn into a single line and exit code 2."""


class UserError(Exception):
    """Bad input from the person at the keyboard: the message says what is wrong and the fix."""
