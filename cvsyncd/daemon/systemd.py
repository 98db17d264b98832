"""Telling systemd how the daemon is doing: the sd_notify protocol, without dependencies.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``, a datagram socket to which the
service sends newline-separated assignments (``READY=1``, ``STATUS=…``, ``WATCHDOG=1``, …);
see sd_notify(3). With ``WatchdogSec=`` it also passes ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``, the process it is meant for) and kills the service when no
``WATCHDOG=1`` arrives in time.

:class:`Notifier` is made once, from the environment, by the daemon. Without
``$NOTIFY_SOCKET`` (a terminal, launchd, a test) every method does nothing. Sending never
raises: a lost notification is logged and the daemon goes on, because a daemon that stops
over its status line would be worse than one that systemd cannot see. When
``systemd-python`` is installed its ``systemd.daemon.notify`` sends (it also knows the
socket kinds of newer systemd versions); otherwise the few lines below do.

The environment is read, never changed (hook commands are started without systemd's
variables: ``notify/hooks.py``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

from cvsyncd import events as ev
from cvsyncd.jobs import JobState

# the job states worth a word in the status line, in the order a job goes through them;
# done, failed and duplicate are history, not what the daemon is doing
SHOWN_STATES = tuple(
    state for state in JobState if state not in (JobState.DONE, JobState.FAILED, JobState.DUPLICATE)
)

Send = Callable[[str], None]


def libsystemd_send() -> Send | None:
    """Return a sender using ``systemd.daemon.notify`` if systemd-python is importable."""
    try:
        from systemd import daemon  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None

    def send(state: str) -> None:
        if not daemon.notify(state):
            raise OSError("sd_notify did not deliver the notification")

    return send


def socket_address(value: str) -> str | None:
    """Given ``$NOTIFY_SOCKET``, return the address to send to, or None if it is not one
    the built-in sender can use (a path, or ``@name`` for an abstract socket)."""
    if len(value) > 1 and value[0] == "/":
        return value
    if len(value) > 1 and value[0] == "@":
        return "\0" + value[1:]
    return None


def watchdog_usec(env: Mapping[str, str], pid: int) -> int | None:
    """Return ``$WATCHDOG_USEC`` if the watchdog is on for process ``pid``, else None."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    target = env.get("WATCHDOG_PID")
    if target is not None:
        try:
            if int(target) != pid:
                return None  # meant for another process (we were started by the main one)
        except ValueError:
            return None
    return usec


class Notifier:
    """Sends state notifications to systemd; does nothing if systemd did not ask for them.

    Use :meth:`from_environment`. Every method returns whether the notification was sent
    (False when notifications are off or sending failed), and none raises.
    """

    def __init__(
        self,
        address: str | None,
        *,
        watchdog_usec: int | None = None,
        send: Send | None = None,
    ):
        """Notify the socket at ``address`` (``/path``, or ``@name`` for an abstract
        socket; None: notifications off). ``send`` replaces the built-in sender."""
        self.address = address
        self.log = structlog.get_logger("cvsyncd.sdnotify")
        self._watchdog_usec = watchdog_usec
        self._target = ""
        self._failing = False  # log a run of failures once, not every watchdog ping
        self._send: Send | None = None
        if address is None:
            return
        if send is not None:
            self._send = send
        elif (target := socket_address(address)) is not None:
            self._target = target
            self._send = self._send_datagram
        else:
            self.log.warning(
                ev.SYSTEMD_BAD_SOCKET,
                address=address,
            )

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] | None = None, *, pid: int | None = None
    ) -> Notifier:
        """Return the Notifier systemd asked for in ``env`` (``os.environ`` if None).

        ``pid`` (our own by default) decides whether ``$WATCHDOG_PID`` means us. Only with
        the process environment itself is ``systemd-python`` used, since it reads that.
        """
        process_env = env is None
        env = os.environ if env is None else env
        pid = os.getpid() if pid is None else pid
        address = env.get("NOTIFY_SOCKET") or None
        send = libsystemd_send() if process_env and address else None
        return cls(address, watchdog_usec=watchdog_usec(env, pid), send=send)

    @property
    def enabled(self) -> bool:
        """Whether systemd listens (``$NOTIFY_SOCKET`` was given and is usable)."""
        return self._send is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``NAME=value`` assignments in one datagram. Return whether it was sent."""
        if self._send is None:
            return False
        try:
            self._send("\n".join(assignments))
        except OSError as error:
            if not self._failing:
                self.log.warning(
                    ev.SYSTEMD_UNREACHABLE,
                    address=self.address,
                    error=error.strerror or str(error),
                    notification=assignments[0].partition("=")[0],
                )
            self._failing = True
            return False
        if self._failing:
            self.log.info(ev.SYSTEMD_BACK, address=self.address)
            self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) is complete."""
        return self.notify("READY=1", *status_assignment(status))

    def reloading(self, status: str | None = None) -> bool:
        """A reload has begun; call :meth:`ready` when it is done.

        ``MONOTONIC_USEC`` is what systemd 253 and later require with ``RELOADING=1``
        (``Type=notify-reload``); older versions ignore it.
        """
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={now}", *status_assignment(status))

    def stopping(self, status: str | None = None) -> bool:
        """The daemon is stopping (draining); systemd shows the unit as deactivating."""
        return self.notify("STOPPING=1", *status_assignment(status))

    def status(self, text: str) -> bool:
        """Set the one-line status ``systemctl status`` shows."""
        return self.notify(*status_assignment(text))

    def watchdog_ping(self) -> bool:
        """Tell the watchdog we are alive; a no-op when the watchdog is off for us."""
        if self._watchdog_usec is None:
            return False
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Return how often (seconds) to call :meth:`watchdog_ping`: half of
        ``WatchdogSec=``, as sd_watchdog_enabled(3) advises; None if the watchdog is off
        for this process or notifications are off."""
        if self._watchdog_usec is None or not self.enabled:
            return None
        return self._watchdog_usec / 2_000_000

    def _send_datagram(self, state: str) -> None:
        # A socket per notification, as libsystemd does: nothing to keep open or close, and
        # a systemd that re-created its socket (daemon-reexec) is reached all the same.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), self._target)


def status_assignment(text: str | None) -> tuple[str, ...]:
    """Return ``STATUS=text`` on one line (a newline would start another assignment)."""
    if text is None:
        return ()
    return ("STATUS=" + " ".join(text.split()),)


def status_line(counts: Mapping[str, int], paused: str | None, folders: int) -> str:
    """Given jobs per state, why new work is paused (None if it is not), and the number of
    watched folders, return a status line for systemd, such as
    ``"2 uploading, 3 processing, 1 needs attention; paused: no credits"``.

    Only states of current work are shown (and ``needs attention``, which waits for the
    user); finished jobs are not.
    """
    parts = [
        f"{counts[state]} {state.replace('_', ' ')}"
        for state in SHOWN_STATES
        if counts.get(state, 0) > 0
    ]
    if not parts:
        parts = [f"idle, watching {folders} folder{'' if folders == 1 else 's'}"]
    line = ", ".join(parts)
    return f"{line}; paused: {paused}" if paused else line
