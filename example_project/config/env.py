"""Where settings come from: the environment first, then a `.env` file (python-decouple).

The file is example_project/.env (or one in a parent folder), or the file that `ENV_FILE` names.
Shared by settings.py and gunicorn.conf.py so both read the same values.
"""

from __future__ import annotations

import os
from pathlib import Path

from decouple import AutoConfig, Config, RepositoryEnv

_env_file = os.environ.get("ENV_FILE")
config = (
    Config(RepositoryEnv(_env_file))
    if _env_file
    else AutoConfig(search_path=Path(__file__).resolve().parent.parent)
)
