"""The inboxes: watching them, deciding when a recording is complete, and reading it
only while it is provably the file that was taken.

::

    inbox/
    ├── watcher.py    the loop: events and rescans in, settled recordings out to intake
    ├── observers.py  one watchdog observer per inbox (inotify, or polling on a share)
    ├── settling.py   when an entry is complete: its look compared over time
    ├── rules.py      which names are recordings, multi-track sessions, availability
    ├── inputs.py     opening an input through a descriptor proven to be the file taken
    ├── media.py      what a local file is (magic numbers, mutagen), before paying for it
    └── places.py     the config's folders compared on disk (links, mounts)
"""
