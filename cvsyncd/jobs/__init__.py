"""Jobs: their states and the transitions between them, and the store that keeps them.

::

    jobs/
    ├── states.py      JobState, TRANSITIONS (the state machine as data), Job, InputFile
    ├── store.py       Store: the write side (new jobs, state changes, requeue, resume)
    ├── queries.py     the read side: the questions the pipeline and the commands ask
    ├── meta.py        daemon-wide values beside the jobs, each with typed methods
    ├── spending.py    the spend guard's records: hours spent, held jobs, backlogs, usage
    ├── database.py    the database file: opening, transactions, integrity, migrating
    ├── migrations.py  the schema, as an ordered list of migrations
    └── lock.py        one daemon (or `cvsyncd process` run) per state directory

Only this package touches the database; the names below are its face.
"""

from cvsyncd.jobs.lock import daemon_pid, lock_holder, wake_daemon
from cvsyncd.jobs.meta import ALL_FOLDERS
from cvsyncd.jobs.queries import Listing
from cvsyncd.jobs.spending import Backlog, Spent, UsageRow
from cvsyncd.jobs.states import (
    ACTIVE,
    REMOTE,
    RETRYABLE,
    TERMINAL,
    TRANSITIONS,
    WORKING,
    InputFile,
    Job,
    JobState,
    TransitionError,
    check_transition,
    iso_time,
)
from cvsyncd.jobs.store import JsonText, Store

__all__ = [
    "ACTIVE",
    "ALL_FOLDERS",
    "REMOTE",
    "RETRYABLE",
    "TERMINAL",
    "TRANSITIONS",
    "WORKING",
    "Backlog",
    "InputFile",
    "Job",
    "JobState",
    "JsonText",
    "Listing",
    "Spent",
    "Store",
    "TransitionError",
    "UsageRow",
    "check_transition",
    "daemon_pid",
    "iso_time",
    "lock_holder",
    "wake_daemon",
]
