"""The pipeline: from a settled file to a finished job, one persisted step at a time.

::

    pipeline/
    ├── runtime.py    Runtime: config, store, client, account pause, notices — swapped at once
    ├── scheduler.py  which step of which job runs next, within the limits; draining
    ├── intake.py     a settled file (or session) becomes a queued job
    ├── backlog.py    a folder's first inbox content: measured, and taken, held or skipped
    ├── spend.py      the spend guard's terms: holds, caps, the local calendar, hours
    ├── guard.py      the spend guard at work: queued → held before any upload, and back
    ├── upload.py     queued → uploaded (the input read through a proven descriptor)
    ├── videoupload.py  a video's sound sent alone, and put back into the video here
    ├── avtools.py    ffprobe and ffmpeg: streams, extracting, remuxing, checking
    ├── submit.py     uploaded → processing (the write-ahead intent) and polling
    ├── delivery.py   fetching results and writing the outputs
    ├── disposal.py   moving, deleting or setting aside exactly the content a job took
    ├── outcomes.py   what a failure means for a job
    ├── account.py    the account pause (key, credit) and the key file watched
    ├── schedule.py   when to poll, from the recording's duration
    ├── notices.py    what to tell at the end of a job (hooks, webhook) and when
    ├── actions.py    what an operator may do to jobs: retry, release, forget, render, pause
    ├── report.py     what ``status`` and ``jobs`` report, as data
    ├── estimate.py   what ``estimate`` reports: what would be taken, and what it comes to
    └── usage.py      the usage ledger: hours used by folder, day or month
"""
