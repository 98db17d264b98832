"""Telling others that a job ended: a command of the user's, a signed webhook.

::

    notify/
    ├── message.py   the Event both receive, and the Report of each notification
    ├── hooks.py     running ``on_done``/``on_failed`` (no shell, no systemd variables)
    └── webhook.py   the signed, retried POST to ``notify_url``
"""
