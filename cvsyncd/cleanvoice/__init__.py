"""Talking to Cleanvoice: the HTTP client, what its answers mean, the request budget.

::

    cleanvoice/
    ├── client.py     CleanvoiceClient: the API calls and how every failure is classified
    ├── transfers.py  streamed uploads and downloads (no credentials), their checks
    ├── answers.py    the words, codes, statuses and balances of answers of any shape
    └── budget.py     the client's own per-key request budget (sliding windows)

Back-off and ``Retry-After`` are ``cvsyncd/retry.py``: the same rule for the pipeline's
steps, the account checks and the webhooks.
"""
