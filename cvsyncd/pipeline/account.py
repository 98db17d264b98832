"""Account-level trouble: a refused key or no credit pauses all new work, fails nothing.

When an upload or a create-edit is refused for the account (HTTP 401, 403, 402 or any
answer that says the credit ran out), :class:`AccountPause` stops new uploads and
submissions, says why (``cvsyncd status``, the systemd status line), and checks the
account with a growing back-off, at once when the key file changes (a new key is read).
Credit is back when the balance rose above what it was when work stopped; an account
answer that gives no balance is answered by a trial: one recording is let through
(docs/cleanvoice-api.md, "Out of credit").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from cvsyncd import events as ev
from cvsyncd.cleanvoice.answers import account_balance, says_insufficient_credits
from cvsyncd.cleanvoice.client import CleanvoiceClient
from cvsyncd.config import Config
from cvsyncd.config.apikey import key_signature, read_api_key
from cvsyncd.errors import AccountApiError, ApiError, ConfigError
from cvsyncd.jobs import Store
from cvsyncd.redact import register_secret
from cvsyncd.retry import backoff_delay


class AccountPause:
    """Account-level trouble: no new uploads or submissions until the account works.

    The reason is kept in the store so that ``cvsyncd status`` can show it; after a
    restart the account is checked again at once. While paused, the account is checked
    with a growing back-off, and at once when the key file changes (a new key is read).
    """

    def __init__(
        self,
        store: Store,
        config: Config | None = None,
        on_pause: Callable[[str], None] | None = None,
    ):
        self.store = store
        self.on_pause = on_pause  # told each new reason (the alerts)
        self.config = config  # the runtime sets the current one on a reload
        self.reason: str | None = store.account_pause()
        self.check_at = 0.0
        self.strikes = 0
        self.log = structlog.get_logger("cvsyncd.pause")
        self._key_signature = key_signature(config) if config else ()
        self._check: asyncio.Task[None] | None = None
        self._credit_floor: float | None = None  # the balance when credits ran out
        self.trial = False  # one step of new work may go, to see if the account works

    @property
    def active(self) -> bool:
        return self.reason is not None

    def holds_back(self, new_work_running: int) -> bool:
        """Whether a step of new work (an upload or a submission) must wait now.

        While paused nothing goes, except during a trial: then one step at a time.
        """
        if not self.active:
            return False
        return not self.trial or new_work_running > 0

    def engage(self, reason: str) -> None:
        self.strikes += 1
        self.trial = False
        # account checks back off more slowly than retries: 1 minute, doubling to 30 (with
        # the default retry_initial_seconds = 5 and retry_max_seconds = 900)
        daemon = self.config.daemon if self.config else None
        base = 12 * daemon.retry_initial_seconds if daemon else 60.0
        cap = 2 * daemon.retry_max_seconds if daemon else 1800.0
        self.check_at = time.time() + backoff_delay(self.strikes, base=base, cap=cap)
        if reason != self.reason:
            self.log.error(
                ev.ACCOUNT_PAUSED,
                reason=reason,
                recheck_in=round(self.check_at - time.time()),
            )
            self.store.set_account_pause(reason)
            if self.on_pause is not None:
                self.on_pause(reason)
        self.reason = reason

    def release(self) -> None:
        self._credit_floor = None
        self.trial = False
        if self.reason is not None:
            self.log.info(ev.ACCOUNT_RESUMED)
            self.store.set_account_pause(None)
        self.reason = None

    def _reload_key_if_changed(self, client: CleanvoiceClient) -> None:
        if self.config is None:
            return
        signature = key_signature(self.config)
        if signature == self._key_signature:
            return
        self._key_signature = signature
        try:
            key = read_api_key(self.config)
        except ConfigError as exc:
            self.log.error(
                ev.ACCOUNT_KEY_UNUSABLE,
                error="; ".join(str(p) for p in exc.problems),
            )
            return
        register_secret(key)
        client.set_api_key(key)
        self.check_at = 0.0  # try the new key now
        self.log.info(ev.ACCOUNT_KEY_CHANGED)

    def submitted(self) -> None:
        """A create-edit went through: the account is fine."""
        self.strikes = 0
        self.release()

    def maybe_recheck(self, client: CleanvoiceClient) -> None:
        """When paused and the back-off has passed, ask the account (in the background)
        whether to resume; the scheduler's loop does not wait for the answer."""
        if not self.active or self.trial or (self._check is not None and not self._check.done()):
            return
        self._reload_key_if_changed(client)
        if time.time() < self.check_at:
            return
        self._check = asyncio.get_running_loop().create_task(self._recheck(client))

    async def _recheck(self, client: CleanvoiceClient) -> None:
        try:
            account = await client.account()
        except AccountApiError as exc:
            self.engage(account_trouble(exc))
            return
        except ApiError as exc:
            self.check_at = time.time() + 60.0
            self.log.warning(ev.ACCOUNT_CHECK_FAILED, error=exc.message)
            return
        balance = account_balance(account)
        if self.reason == NO_CREDITS:
            # Credit is back only if the balance rose above what it was when work stopped.
            # An account body without a balance (the SDK's AccountInfo has none that the
            # docs name), or a first look after a restart, cannot tell: then one recording
            # is let through as a trial, and a second refusal pauses again.
            if balance is not None and self._credit_floor is not None:
                if balance > self._credit_floor:
                    self.release()
                else:
                    self.engage(NO_CREDITS)
                return
            if balance is not None:
                self._credit_floor = balance
            self.begin_trial()
            return
        if balance is not None and balance <= 0:
            self.engage(NO_CREDITS)
            return
        self.release()

    def begin_trial(self) -> None:
        """Let one upload or submission through to learn whether the account works again."""
        if not self.trial:
            self.log.info(ev.ACCOUNT_TRIAL)
        self.trial = True


NO_CREDITS = (
    "the Cleanvoice account has no credits left. Add credits in the Cleanvoice "
    "dashboard; work resumes by itself once the balance goes up"
)


def account_trouble(exc: AccountApiError) -> str:
    """Say in plain words why Cleanvoice refused, and what brings the daemon back."""
    if exc.status == 401:
        return (
            "Cleanvoice refused the API key (HTTP 401). Put a valid key where cvsyncd "
            "reads it (see `cvsyncd check`); work resumes by itself once the key works"
        )
    if says_insufficient_credits(exc.status, exc.code, exc.said or exc.message):
        return NO_CREDITS
    return (
        f"Cleanvoice refused a request for this account: {exc.message}. Work resumes "
        "by itself once the account is in order"
    )
