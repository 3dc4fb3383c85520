"""The one exception type the CLI turns into a single clear error line (exit code 2)."""


class Phi1Error(Exception):
    """A problem with the user's input or environment, stated so that they can fix it."""
