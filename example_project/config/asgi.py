"""ASGI entry point: Gunicorn with uvicorn workers (gunicorn.conf.py), or `uvicorn config.asgi:app`.

The API's views are synchronous and run in a thread per request; the live results streams are
async and cost no thread while they wait.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_asgi_application()
