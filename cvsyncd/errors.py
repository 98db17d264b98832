"""The one exception tree of cvsyncd.

::

    CvsyncdError                      base; carries data, never prints
    ├── ConfigError(problems)         every problem of one config file, reported together
    ├── UsageError                    a command was given what it cannot use (exit code 2)
    ├── StoreError                    the state database cannot be used
    │   ├── StoreCorrupt              quick_check failed
    │   ├── StoreTooNew               written by a newer cvsyncd
    │   ├── StoreLocked               another daemon owns the state directory
    │   └── StoreUnavailable          the shared store (PostgreSQL) does not answer now
    ├── ApiError                      a Cleanvoice call did not succeed
    │   ├── TransientApiError         retry later (network, timeout, 408/429/5xx)
    │   ├── AccountApiError           the key or the account is the problem (401/403, credits)
    │   ├── PermanentApiError         this request will never succeed (400/404/413/422, …)
    │   │   ├── EditFailed            Cleanvoice itself reported the edit as FAILURE
    │   │   └── AnswerTooLarge        an answer was larger than cvsyncd reads
    │   └── AmbiguousApiError         a non-idempotent call may or may not have taken effect
    └── JobError                      one job cannot go on (bad input file, output trouble)
        ├── InputRefused              the input is no longer a regular file (inputs.py)
        └── InputChanged              the input is another file, or changed (inputs.py)

Only ``cli.main`` turns these into words for a terminal and into exit codes; everything
else raises them with the facts.
"""

from __future__ import annotations

from dataclasses import dataclass


class CvsyncdError(Exception):
    """Base of every error cvsyncd raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file: where, what, and what would be valid."""

    file: str
    key: str
    message: str
    valid: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.key}" if self.key else self.file
        text = f"{where}: {self.message}"
        return f"{text} — valid: {self.valid}" if self.valid else text


class ConfigError(CvsyncdError):
    """A config file has one or more problems; all of them are in ``problems``."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(CvsyncdError):
    """A command line asks for something that cannot be done as asked: nothing was done."""


class StoreError(CvsyncdError):
    """The state database cannot be opened or used."""


class StoreCorrupt(StoreError):
    """The state database failed its integrity check."""


class StoreTooNew(StoreError):
    """The state database was written by a newer version of cvsyncd."""


class StoreLocked(StoreError):
    """Another cvsyncd daemon holds the state directory."""


class StoreUnavailable(StoreError):
    """The shared store's database does not answer (stopped, unreachable). A write that
    failed so was rolled back, unless the connection broke during its COMMIT: every write
    of the store checks the state it expects, so doing the step again is safe."""


class ApiError(CvsyncdError):
    """A Cleanvoice request did not succeed.

    ``status`` is the HTTP status (None when no response arrived), ``code`` the API's error
    code when it gave one, ``retry_after`` the seconds the server asked us to wait, and
    ``said`` the service's own words (plain, bounded text). The message never contains
    the API key or a signed URL's query string.
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        said: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.said = said


class TransientApiError(ApiError):
    """Worth retrying later: connection trouble, timeouts, 408/429/5xx."""

    kind = "transient"


class AccountApiError(ApiError):
    """The key is wrong or the account may not do this (no credits): pause, do not fail jobs."""

    kind = "account"


class PermanentApiError(ApiError):
    """This request will not succeed if repeated: the job fails."""

    kind = "permanent"


class EditFailed(PermanentApiError):
    """Cleanvoice answered FAILURE for an edit: the edit is over, its files may go."""


class AnswerTooLarge(PermanentApiError):
    """An answer was larger than the cap on what cvsyncd reads from the API."""


class AmbiguousApiError(ApiError):
    """A request that is not idempotent was sent but its outcome is unknown."""

    kind = "ambiguous"


class JobError(CvsyncdError):
    """One job cannot continue. ``retryable`` says whether waiting may help (e.g. disk full);
    ``superseded_by`` names the job that now has the file this one took."""

    def __init__(self, message: str, *, retryable: bool = False, superseded_by: int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.superseded_by = superseded_by
