"""The outbox: which files a job leaves there, written atomically, rendered locally.

::

    outbox/
    ├── plan.py      the outputs of a job and their names (never a server's names)
    ├── files.py     atomic files, safe moves, sweeping our own leftovers
    ├── tags.py      title, description, show, cover and chapters written into MP3/M4A
    └── render/      transcripts, subtitles, summaries, chapters, markers (pure functions)
"""
