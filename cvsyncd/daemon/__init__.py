"""The daemon: a service's lifecycle around the pipeline and the watcher.

::

    daemon/
    ├── lifecycle.py  startup → main loop → shutdown; signals only set flags
    ├── supervisor.py reload, operator pause, status for systemd, the watchdog
    ├── systemd.py    the sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING)
    ├── journal.py    logging straight to the journal, with fields
    ├── logs.py       structlog set up for a terminal, JSON lines or the journal
    └── oneshot.py    ``cvsyncd process``: the pipeline once, in the foreground
"""
