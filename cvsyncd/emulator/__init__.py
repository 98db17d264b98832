"""A local, faithful Cleanvoice API server for trying the daemon and for the tests.

``Emulator`` serves the API of docs/cleanvoice-api.md (``/v2/upload``, ``/v2/edits``,
``/v1/account``) and the presigned object storage behind it, on loopback, with the real
limits, error shapes and failure modes, plus injectable faults. See docs/emulator.md.

Module map (each one owns one thing)::

    __init__     the public interface, re-exported from core and command
    core         Emulator: wiring the parts together, start/stop
    command      the flags of ``cvsyncd emulator`` and running until a signal
    server       the HTTP/1.1 socket server, connection tracking, clean stop
    router       routes, API-key check, fault injection, the request log line
    httpio       request bodies (length/chunked), responses, resets
    api          /v2/upload, /v2/edits, /v1/account
    storage      presigned PUT and ranged GET on /storage/...
    admin        /_emulator/faults and /_emulator/state (loopback only)
    state        uploads, edits, credits, retention
    processing   status timeline and an edit's outcome
    content      generated statistics, transcript, summary, social posts, markers
    artifacts    result files on disk: copy, ZIP, mix, label file
    media        magic numbers and durations
    vocabulary   validation of the create-edit body (the emulator's own copy)
    signing      presigned URLs (HMAC-SHA256)
    ratelimit    sliding-window limits
    faults       fault settings and the seeded picker
    variants     which documented shape each answer takes (canonical or varied, seeded)
    replies      JSON, error bodies in every style, S3 XML
    requestlog   requests.jsonl

Nothing here imports the rest of cvsyncd: the emulator is the yardstick for that code.
"""

from cvsyncd.emulator.command import add_arguments, run_from_args
from cvsyncd.emulator.core import DEFAULT_API_KEY, Emulator
from cvsyncd.emulator.faults import FaultSettings

__all__ = ["DEFAULT_API_KEY", "Emulator", "FaultSettings", "add_arguments", "run_from_args"]
