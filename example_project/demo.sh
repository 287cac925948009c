#!/usr/bin/env bash
# Run the example project: migrate, load the demo data, collect static files, serve with Gunicorn.
# `make demo` runs this inside the project's virtual environment. The environment (or
# example_project/.env) configures it: DATABASE_URL, HOST, PORT, WEB_CONCURRENCY, THROTTLE, ...
# `demo.sh settings` only writes the demo's local settings (example_project/.env) and stops.
set -euo pipefail
cd "$(dirname "$0")"
python="${PYTHON:-python}"
umask 077

# A setting as the project sees it: from the environment, else from example_project/.env.
setting() { "$python" -c "from config.env import config; print(config('$1', default=''))"; }
new_secret() { "$python" -c "import secrets; print(secrets.token_urlsafe(${1:-50}))"; }
mkdir -p .demo

# A local demo: plain HTTP unless HTTPS is set, and a secret key of its own. Both are written on
# the first run to example_project/.env (git-ignored, readable by its owner only), so that
# manage.py finds them too (createsuperuser, shell); or to the file that ENV_FILE names.
env_file="${ENV_FILE:-.env}"
if [ -z "${ENV_FILE:-}" ] && [ ! -e .env ]; then
    {
        echo "# The demo's local settings, written by make demo (demo.sh): not for production."
        echo "# Every variable is described in .env.example; the environment wins over this file."
        [ -n "$(setting HTTPS)" ] || echo "HTTPS=false"
    } > .env
fi
[ -n "$(setting HTTPS)" ] || export HTTPS=false
if [ -z "$(setting SECRET_KEY)" ]; then
    # A key from before the demo wrote .env (kept in .demo/) stays the same key.
    SECRET_KEY="$(cat .demo/secret-key 2>/dev/null || new_secret)"
    export SECRET_KEY
    if [ -f "$env_file" ]; then
        echo "SECRET_KEY=$SECRET_KEY" >> "$env_file"
        echo "The demo's secret key is in $(cd "$(dirname "$env_file")" && pwd)/$(basename "$env_file")."
    fi
fi
[ "${1:-}" != "settings" ] || exit 0

# The demo user is an administrator: its password is "demo" only while the server listens on
# this machine alone; on any other address it is random (kept in .demo/), unless DEMO_PASSWORD.
password="$(setting DEMO_PASSWORD)"
if [ -z "$password" ]; then
    case "$(setting HOST)" in
        "" | 127.* | localhost | ::1 | "[::1]") password=demo ;;
        *)
            [ -s .demo/password ] || new_secret 12 > .demo/password
            password="$(cat .demo/password)"
            ;;
    esac
fi

"$python" manage.py migrate --noinput
"$python" manage.py seed_polls --password "$password"
"$python" manage.py collectstatic --noinput --verbosity 0

# Gunicorn prints the URLs of the API, Swagger UI, ReDoc and the admin once it listens.
exec "$python" -m gunicorn --config gunicorn.conf.py
