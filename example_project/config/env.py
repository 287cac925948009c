"""Where settings come from: the environment first, then a `.env` file (python-decouple).

The file is example_project/.env, or the file that `ENV_FILE` names; no other file is read.
Shared by settings.py and gunicorn.conf.py so both read the same values.
"""

from __future__ import annotations

import os
from pathlib import Path

from decouple import Config, RepositoryEmpty, RepositoryEnv
from django.core.exceptions import ImproperlyConfigured

_named = os.environ.get("ENV_FILE")
_env_file = Path(_named) if _named else Path(__file__).resolve().parent.parent / ".env"
if _named and not _env_file.exists():
    raise ImproperlyConfigured(f"ENV_FILE names {_named}, which does not exist.")

config = Config(RepositoryEnv(str(_env_file)) if _env_file.exists() else RepositoryEmpty())
