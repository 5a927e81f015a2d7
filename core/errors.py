"""Expected failures: the CLI prints them as one line plus a hint, never as a stack trace."""


class PlatformError(RuntimeError):
    """A failure the user can act on (missing data, bad input, no model...)."""

    hint: str = ""
    # The CLI's exit status. 3 = the data was rejected (a gate): rerunning cannot help, so Airflow does not
    # retry it; 1 = anything else (a retry may help: a server was down, a lock was held).
    exit_code: int = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint
