"""Telling others: a command of the user's and a signed webhook when a job ended; alerts
to people when something needs them.

::

    notify/
    ├── message.py   the Event both receive, and the Report of each notification
    ├── hooks.py     running ``on_done``/``on_failed`` (no shell, no systemd variables)
    ├── webhook.py   the signed, retried POST to ``notify_url``
    └── alerts.py    grouped, retried messages through Apprise (``[alerts]``)
"""
