#!/usr/bin/env bash
# Run the example project: migrate, load the demo data, collect static files, serve with Gunicorn.
# `make demo` runs this inside the project's virtual environment. The environment (or
# example_project/.env) configures it: DATABASE_URL, HOST, PORT, WEB_CONCURRENCY, THROTTLE, ...
set -euo pipefail
cd "$(dirname "$0")"
python="${PYTHON:-python}"

# A local demo: plain HTTP on 127.0.0.1 and a secret key of its own, kept beside the database.
export HTTPS="${HTTPS:-false}"
if [ -z "${SECRET_KEY:-}" ]; then
    [ -s .demo-secret-key ] || "$python" -c "import secrets; print(secrets.token_urlsafe(50))" > .demo-secret-key
    SECRET_KEY="$(cat .demo-secret-key)"
    export SECRET_KEY
fi

"$python" manage.py migrate --noinput
"$python" manage.py seed_polls
"$python" manage.py collectstatic --noinput --verbosity 0

# Gunicorn prints the URLs of the API, Swagger UI, ReDoc and the admin once it listens.
exec "$python" -m gunicorn --config gunicorn.conf.py
