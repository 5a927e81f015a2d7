"""Expected failures: the CLI prints them as one line plus a hint, never as a stack trace."""


class PlatformError(RuntimeError):
    """A failure the user can act on (missing data, bad input, no model...)."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint
