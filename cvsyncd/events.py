"""The names of the events cvsyncd logs, and the plain words for each.

A log line's ``event`` is one of these names: stable, dotted, lower case, the same in the
JSON lines, in the journal (``CVSYNCD_EVENT``) and in every version, so that alerts,
scripts and the tests can match on it. The English is the ``message`` field, added from
:data:`MESSAGES` when the line is rendered (``daemon/logs.py``); it may be reworded at
any time. A new event gets a constant here and a line in :data:`MESSAGES`; nothing logs
a name that is not listed (a test checks every call).
"""

from __future__ import annotations

# -- the daemon -----------------------------------------------------------------------
DAEMON_STARTED = "daemon.started"
DAEMON_STOPPING = "daemon.stopping"
DAEMON_STOP_NOW = "daemon.stop_now"
DAEMON_STOPPED = "daemon.stopped"
DAEMON_STUCK = "daemon.stuck"
DAEMON_TEMP_REMOVED = "daemon.temp_removed"
CONFIG_RELOADED = "config.reloaded"
CONFIG_REJECTED = "config.rejected"
CONFIG_NEEDS_RESTART = "config.needs_restart"
OPERATOR_PAUSED = "operator.paused"
OPERATOR_RESUMED = "operator.resumed"
SYSTEMD_UNREACHABLE = "systemd.unreachable"
SYSTEMD_BAD_SOCKET = "systemd.bad_socket"
SYSTEMD_BACK = "systemd.back"
STORE_UNAVAILABLE = "store.unavailable"
STORE_AVAILABLE = "store.available"

# -- the inboxes ----------------------------------------------------------------------
INBOX_WATCHING = "inbox.watching"
INBOX_UNWATCHED = "inbox.unwatched"
INBOX_UNAVAILABLE = "inbox.unavailable"
INBOX_BACK = "inbox.back"
INBOX_OBSERVER_RESTARTED = "inbox.observer_restarted"
INBOX_NOT_TAKEN = "inbox.not_taken"
INBOX_EMPTY_FILE = "inbox.empty_file"
INBOX_OVERRIDE_BROKEN = "inbox.override_broken"
INBOX_INTAKE_ERROR = "inbox.intake_error"
INBOX_SCANNED = "inbox.scanned"
INBOX_BACKLOG = "inbox.backlog"
INBOX_BACKLOG_AGAIN = "inbox.backlog_again"

# -- one job, in the order of its path ------------------------------------------------
JOB_QUEUED = "job.queued"
JOB_DUPLICATE = "job.duplicate"
JOB_INPUT_CHANGED = "job.input_changed"
JOB_HELD = "job.held"
JOB_HOLD_ENDED = "job.hold_ended"
JOB_UPLOADING = "job.uploading"
JOB_UPLOADED = "job.uploaded"
JOB_SUBMITTING = "job.submitting"
JOB_SUBMITTED = "job.submitted"
JOB_EDIT_UNRECORDED = "job.edit_unrecorded"
JOB_SLOW = "job.slow"
JOB_EDIT_FINISHED = "job.edit_finished"
JOB_DOWNLOADED = "job.downloaded"
JOB_OUTPUT_SKIPPED = "job.output_skipped"
JOB_TAGGED = "job.tagged"
JOB_VIDEO_UPLOAD = "job.video_upload"
JOB_SOUND_UPLOADED = "job.sound_uploaded"
JOB_SOUND_PUT_BACK = "job.sound_put_back"
JOB_TAGS_SKIPPED = "job.tags_skipped"
JOB_WRITTEN = "job.written"
JOB_EDIT_NOT_DELETED = "job.edit_not_deleted"
JOB_INPUT_REPLACED = "job.input_replaced"
JOB_DONE = "job.done"
JOB_RETRY = "job.retry"
JOB_RESUBMITTING = "job.resubmitting"
JOB_NEEDS_ATTENTION = "job.needs_attention"
JOB_FAILED = "job.failed"
JOB_SET_ASIDE_FAILED = "job.set_aside_failed"
JOB_FOLDER_GONE = "job.folder_gone"
JOB_CHANGED_MEANWHILE = "job.changed_meanwhile"
JOB_UPLOAD_REDO = "job.upload_redo"
JOB_STEP_INTERRUPTED = "job.step_interrupted"
JOB_STEP_ERROR = "job.step_error"

# -- the scheduler stopping -----------------------------------------------------------
PIPELINE_DRAINING = "pipeline.draining"
PIPELINE_INTERRUPTING = "pipeline.interrupting"
PIPELINE_AWAITING_CREATE = "pipeline.awaiting_create"

# -- the account ----------------------------------------------------------------------
ACCOUNT_PAUSED = "account.paused"
ACCOUNT_RESUMED = "account.resumed"
ACCOUNT_TRIAL = "account.trial"
ACCOUNT_CHECK_FAILED = "account.check_failed"
ACCOUNT_KEY_CHANGED = "account.key_changed"
ACCOUNT_KEY_UNUSABLE = "account.key_unusable"

# -- telling others -------------------------------------------------------------------
NOTIFY_SENT = "notify.sent"
NOTIFY_FAILED = "notify.failed"
NOTIFY_UNSIGNED = "notify.unsigned"
HOOK_DONE = "hook.done"
HOOK_FAILED = "hook.failed"
HOOK_NOT_STARTED = "hook.not_started"
WEBHOOK_DELIVERED = "webhook.delivered"
WEBHOOK_RETRY = "webhook.retry"
WEBHOOK_REFUSED = "webhook.refused"
WEBHOOK_FAILED = "webhook.failed"
ALERT_SENT = "alert.sent"
ALERT_RETRY = "alert.retry"
ALERT_FAILED = "alert.failed"
ALERT_UNUSABLE = "alert.unusable"

# -- the dashboard ([web]) ------------------------------------------------------------
WEB_STARTED = "web.started"
WEB_LOGIN = "web.login"
WEB_LOGIN_FAILED = "web.login_failed"
WEB_REFUSED = "web.refused"
WEB_ACTION = "web.action"
WEB_FAILED = "web.failed"

# -- the API (debug) ------------------------------------------------------------------
API_CALL = "api.call"
API_UPLOAD = "api.upload"
API_DOWNLOAD = "api.download"

MESSAGES: dict[str, str] = {
    DAEMON_STARTED: "started",
    STORE_UNAVAILABLE: "the shared store does not answer: no new step starts until it does",
    STORE_AVAILABLE: "the shared store answers again: work goes on",
    DAEMON_STOPPING: "stopping: no new work; finishing what is running "
    "(send the signal again to stop at once)",
    DAEMON_STOP_NOW: "second stop signal: stopping now",
    DAEMON_STOPPED: "stopped",
    DAEMON_STUCK: "unhealthy: a main loop is stuck or the state database does not answer; "
    "not pinging the watchdog",
    DAEMON_TEMP_REMOVED: "removed a temp file left by an interrupted write",
    CONFIG_RELOADED: "config reloaded",
    CONFIG_REJECTED: "the changed config has problems; still running with the previous one",
    CONFIG_NEEDS_RESTART: "this setting changes only with a restart",
    OPERATOR_PAUSED: "paused by the operator",
    OPERATOR_RESUMED: "resumed by the operator",
    SYSTEMD_UNREACHABLE: "cannot notify systemd; going on without it",
    SYSTEMD_BAD_SOCKET: "NOTIFY_SOCKET is neither a path nor an @abstract socket; "
    "systemd will not hear from this daemon",
    SYSTEMD_BACK: "notifying systemd works again",
    INBOX_WATCHING: "watching",
    INBOX_UNWATCHED: "no longer watching",
    INBOX_UNAVAILABLE: "folder paused: its inbox is not available; nothing in it is "
    "taken or failed until it is back",
    INBOX_BACK: "inbox is back; resuming the folder",
    INBOX_OBSERVER_RESTARTED: "the observer of an inbox stopped; restarting it",
    INBOX_NOT_TAKEN: "not taken",
    INBOX_EMPTY_FILE: "empty file; not taken until it has content",
    INBOX_OVERRIDE_BROKEN: "a .cvsyncd.toml is broken; recordings below it wait until it is fixed",
    INBOX_INTAKE_ERROR: "could not take a file",
    INBOX_SCANNED: "looked through a folder for recordings",
    INBOX_BACKLOG: "first look at a folder: what it already held was weighed and decided",
    INBOX_BACKLOG_AGAIN: "an inbox weighed empty is on another device now: weighing it again",
    JOB_QUEUED: "queued",
    JOB_DUPLICATE: "duplicate: not submitted again",
    JOB_INPUT_CHANGED: "input changed before upload; taking the new content",
    JOB_HELD: "held before upload by the spend guard; nothing uploaded",
    JOB_HOLD_ENDED: "no longer held: the budget allows it now",
    JOB_UPLOADING: "uploading",
    JOB_UPLOADED: "uploaded",
    JOB_SUBMITTING: "submitting",
    JOB_SUBMITTED: "submitted",
    JOB_EDIT_UNRECORDED: "the edit was created but could not be stored yet: its id is kept",
    JOB_SLOW: "edit is taking far longer than expected; still waiting",
    JOB_EDIT_FINISHED: "edit finished",
    JOB_DOWNLOADED: "downloaded",
    JOB_OUTPUT_SKIPPED: "an output could not be made from the result",
    JOB_TAGGED: "title, description, chapters and cover written into the cleaned file",
    JOB_VIDEO_UPLOAD: "how this video is sent: whole, or its sound alone",
    JOB_SOUND_UPLOADED: "the video's sound was uploaded alone",
    JOB_SOUND_PUT_BACK: "the cleaned sound was put back into the video, the picture untouched",
    JOB_TAGS_SKIPPED: "the cleaned file is delivered without embedded tags",
    JOB_WRITTEN: "outputs written",
    JOB_EDIT_NOT_DELETED: "could not delete the edit at Cleanvoice; it expires by itself "
    "after 7 days",
    JOB_INPUT_REPLACED: "the input is no longer the recording that was processed; "
    "leaving it in place",
    JOB_DONE: "done",
    JOB_RETRY: "will retry",
    JOB_RESUBMITTING: "create-edit outcome unknown; resubmitting as configured",
    JOB_NEEDS_ATTENTION: "needs attention: create-edit outcome unknown",
    JOB_FAILED: "failed",
    JOB_SET_ASIDE_FAILED: "could not move the failed input aside",
    JOB_FOLDER_GONE: "job's folder is gone from the config",
    JOB_CHANGED_MEANWHILE: "job changed while a step ran",
    JOB_UPLOAD_REDO: "upload interrupted by a stop; will redo it",
    JOB_STEP_INTERRUPTED: "step interrupted by shutdown; it will resume at the next start",
    JOB_STEP_ERROR: "unexpected error in a step; it will be retried",
    PIPELINE_DRAINING: "stopping: waiting for running steps",
    PIPELINE_INTERRUPTING: "stopping: interrupting unfinished steps; they resume at the next start",
    PIPELINE_AWAITING_CREATE: "stopping: waiting for the answer to a create-edit request",
    ACCOUNT_PAUSED: "paused all new uploads and submissions",
    ACCOUNT_RESUMED: "the account works again; resuming uploads and submissions",
    ACCOUNT_TRIAL: "the account does not tell whether credit was added; trying one recording",
    ACCOUNT_CHECK_FAILED: "could not check the account",
    ACCOUNT_KEY_CHANGED: "the API key changed; checking the account with the new key",
    ACCOUNT_KEY_UNUSABLE: "the API key changed but cannot be used",
    NOTIFY_SENT: "notification sent",
    NOTIFY_FAILED: "notification not delivered",
    NOTIFY_UNSIGNED: "cannot sign the webhook; not sent",
    HOOK_DONE: "hook command finished",
    HOOK_FAILED: "hook command failed",
    HOOK_NOT_STARTED: "hook command could not be started",
    WEBHOOK_DELIVERED: "webhook delivered",
    WEBHOOK_RETRY: "webhook not delivered; trying again",
    WEBHOOK_REFUSED: "webhook URL refused; not sent",
    WEBHOOK_FAILED: "webhook not delivered; giving up",
    ALERT_SENT: "alert sent",
    ALERT_RETRY: "alert not delivered; trying again",
    ALERT_FAILED: "alert not delivered; giving up",
    ALERT_UNUSABLE: "an alert URL cannot be used; its alerts are not sent",
    WEB_STARTED: "dashboard listening",
    WEB_LOGIN: "dashboard: logged in",
    WEB_LOGIN_FAILED: "dashboard: wrong password; the next try from this address waits",
    WEB_REFUSED: "dashboard: a form without its session's token was refused",
    WEB_ACTION: "dashboard: action taken",
    WEB_FAILED: "the dashboard stopped after an error; the daemon goes on without it",
    API_CALL: "API call",
    API_UPLOAD: "uploading to a signed URL",
    API_DOWNLOAD: "downloading from a signed URL",
}


def message_of(name: str) -> str | None:
    """The plain words for the event ``name`` (None for a name not listed here)."""
    return MESSAGES.get(name)
