"""The config: what the user wrote, checked, as frozen values.

::

    config/
    ├── model.py      Config, CleanvoiceSettings, DaemonSettings, BudgetSettings, Folder and
    │                 their defaults
    ├── loading.py    load_config / parse_config: every problem of a file reported at once
    ├── schema.py     the machinery: settings, readers, did-you-mean, TOML-style wording
    ├── presets.py    the Cleanvoice option vocabulary, presets and ``extends``
    ├── folders.py    the ``[[folders]]`` keys and the rules between folders
    ├── overrides.py  ``.cvsyncd.toml`` files inside an inbox
    ├── apikey.py     finding the API key (credential, key file, environment)
    └── starter.py    the commented starter config of ``cvsyncd init``

The names below are the package's face; everything else is imported from its module.
"""

from cvsyncd.config.apikey import read_api_key
from cvsyncd.config.loading import load_config, parse_config
from cvsyncd.config.model import (
    DEFAULT_BASE_URL,
    DEFAULT_EXTENSIONS,
    TRANSCRIPT_FORMATS,
    UNCERTAIN_EXTENSIONS,
    BudgetSettings,
    CleanvoiceSettings,
    Config,
    DaemonSettings,
    Folder,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_EXTENSIONS",
    "TRANSCRIPT_FORMATS",
    "UNCERTAIN_EXTENSIONS",
    "BudgetSettings",
    "CleanvoiceSettings",
    "Config",
    "DaemonSettings",
    "Folder",
    "load_config",
    "parse_config",
    "read_api_key",
]
