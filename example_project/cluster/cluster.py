"""The example project as a small cluster on this machine: `make cluster`, `make cluster-down`.

    python example_project/cluster/cluster.py up      # build it (or say it is up), print the URLs
    python example_project/cluster/cluster.py down    # remove all of it
    python example_project/cluster/cluster.py check   # what is missing to build it, if anything
    python example_project/cluster/cluster.py host-up 2   # start app host 2 again (after a fault)
    python example_project/cluster/cluster.py host-down 2 # stop it (e.g. to change its settings)

What `up` builds, all of it private to this machine:

- three app hosts, each a Linux network namespace (`<name>-app1` ...) with its own address on a
  bridge (`<name>-br`, 10.77.0.0/24 by default: the machine is .1, the hosts .11, .12, .13),
  each running the example project under Gunicorn as `make demo` does, configured only through
  its environment variables;
- HAProxy on 127.0.0.1 balancing over them, each checked on /api/health/ every second; it also
  hands the hosts the machine's Redis (127.0.0.1:6379, for throttle counts shared by every
  worker), which listens on the machine's loopback alone;
- a PostgreSQL primary on a port and data directory of its own, a streaming replica of it made
  with pg_basebackup, and PgBouncer in transaction mode in front of both: the hosts reach the
  primary (DATABASE_URL) and the replica (DATABASE_REPLICA_URL) through it, and LISTEN for live
  results straight on the primary (DATABASE_LISTEN_URL).

Every variable of the example project (THROTTLE=off, WEB_CONCURRENCY, ASGI, LOG_LEVEL,
READ_YOUR_WRITES_SECONDS, ...) is passed on to the hosts, but for the database, Redis, address
and secret settings, which the cluster sets. The cluster's own variables:

    CLUSTER_NAME     prefix of namespaces, bridge and state directory (default "polls")
    CLUSTER_SUBNET   the first three numbers of the hosts' /24 network (default 10.77.0)
    CLUSTER_PORT     the balancer's port on 127.0.0.1 (default 8077)
    CLUSTER_DB_PORT  the primary's port; the replica, PgBouncer and the hosts' way to Redis
                     take the next three (default 55432)
    CLUSTER_HOSTS    how many app hosts (default 3)
    CLUSTER_SEED     load the demo polls (default on; off for an empty site)
    CLUSTER_REDIS    the machine's Redis, host:port/db (default 127.0.0.1:6379/0)
    CLUSTER_REPLICA_DELAY  the replica applies each commit this long after the primary
                     (PostgreSQL's recovery_min_apply_delay, e.g. 5s; default none)

Needs root (namespaces, and PostgreSQL and PgBouncer run as the postgres user), iproute2,
HAProxy, PgBouncer and PostgreSQL's server binaries; without one of them it says which and exits 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

#: The settings the cluster gives every host; the others come from the caller's environment.
OWN = (
    "DATABASE_URL",
    "DATABASE_REPLICA_URL",
    "DATABASE_LISTEN_URL",
    "DATABASE_TRANSACTION_POOLER",
    "REDIS_URL",
    "HOST",
    "PORT",
    "ALLOWED_HOSTS",
    "SECRET_KEY",
    "STATIC_ROOT",
    "HTTPS",
    "NUM_PROXIES",
    "ENV_FILE",
)


@dataclass
class Layout:
    """Names, addresses and ports of one cluster, kept in its state directory as JSON."""

    name: str
    subnet: str
    port: int
    hosts: int
    redis: str
    #: The primary's port; the replica, PgBouncer and the hosts' way to Redis take the next three.
    database_port: int = 55432
    app_port: int = 8000
    replica_delay: str = ""

    @property
    def primary_port(self) -> int:
        return self.database_port

    @property
    def replica_port(self) -> int:
        return self.database_port + 1

    @property
    def pgbouncer_port(self) -> int:
        return self.database_port + 2

    @property
    def redis_port(self) -> int:
        return self.database_port + 3

    @property
    def root(self) -> Path:
        return Path(f"/tmp/django-polls-cluster-{self.name}")

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    @property
    def bridge(self) -> str:
        return f"{self.name}-br"[:15]

    def namespace(self, number: int) -> str:
        return f"{self.name}-app{number}"

    def veth(self, number: int) -> str:
        return f"{self.name}-v{number}"[:15]

    def address(self, number: int) -> str:
        return f"{self.subnet}.{10 + number}"

    @property
    def numbers(self) -> range:
        return range(1, self.hosts + 1)

    @property
    def balancer(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def url(self, port: int, name: str = "polls", host: str | None = None) -> str:
        return f"postgres://postgres@{host or self.gateway}:{port}/{name}"

    @classmethod
    def from_environment(cls) -> Layout:
        name = os.environ.get("CLUSTER_NAME", "polls")
        subnet = os.environ.get("CLUSTER_SUBNET", "10.77.0")
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", name):
            fail("CLUSTER_NAME must be 1 to 8 lower-case letters and digits, a letter first.")
        if not re.fullmatch(r"(10|172\.(1[6-9]|2\d|3[01])|192\.168)(\.\d{1,3}){1,2}", subnet) or (
            subnet.count(".") != 2
        ):
            fail("CLUSTER_SUBNET must be the first three numbers of a private /24, like 10.77.0.")
        return cls(
            name=name,
            subnet=subnet,
            port=int(os.environ.get("CLUSTER_PORT", "8077")),
            hosts=int(os.environ.get("CLUSTER_HOSTS", "3")),
            redis=os.environ.get("CLUSTER_REDIS", "127.0.0.1:6379/0"),
            database_port=int(os.environ.get("CLUSTER_DB_PORT", "55432")),
            replica_delay=os.environ.get("CLUSTER_REPLICA_DELAY", ""),
        )

    @classmethod
    def load(cls, root: Path) -> Layout | None:
        try:
            return cls(**json.loads((root / "cluster.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(1)


def say(message: str) -> None:
    print(message, flush=True)


# -- what the machine needs ---------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin (or pg_config's) with the server's programs."""
    candidates = []
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(Path(found.stdout.strip()))

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "pg_basebackup")):
            return bindir
    return None


def program(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(path) for path in (Path("/usr/sbin") / name, Path("/sbin") / name) if path.exists()),
        None,
    )


def missing() -> list[str]:
    """What this machine lacks to build the cluster, one line each."""
    lacking = []
    if os.geteuid() != 0:
        lacking.append("root: network namespaces and bridges need it (run as root, e.g. sudo)")
    for name, package in (
        ("ip", "iproute2"),
        ("haproxy", "haproxy"),
        ("pgbouncer", "pgbouncer"),
        ("runuser", "util-linux"),
    ):
        if program(name) is None:
            lacking.append(f"{name}: not installed (Debian: apt-get install {package})")
    if postgres_bindir() is None:
        lacking.append(
            "PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup): not found "
            "(Debian: apt-get install postgresql)"
        )
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        lacking.append("a postgres user, to run PostgreSQL and PgBouncer (Debian's postgresql)")
    return lacking


# -- running things -----------------------------------------------------------------------------


def run(
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def as_postgres(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(program("runuser") or "runuser", "-u", "postgres", "--", *args, check=check)


def wait_for(what: str, ready: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    fail(f"{what} did not come up within {seconds:.0f} s")


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 1).close()
    except OSError:
        return False
    return True


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pids(pids: list[int | None], seconds: float = 20) -> None:
    """SIGTERM to each at once, then SIGKILL to those still there after `seconds`."""
    waiting = []
    for pid in pids:
        if pid is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            waiting.append(pid)
    deadline = time.monotonic() + seconds
    while waiting and time.monotonic() < deadline:
        time.sleep(0.1)
        waiting = [pid for pid in waiting if alive(pid)]
    for pid in waiting:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- up -----------------------------------------------------------------------------------------


def network_up(layout: Layout) -> None:
    ip = program("ip") or "ip"
    run(ip, "link", "add", layout.bridge, "type", "bridge")
    run(ip, "addr", "add", f"{layout.gateway}/24", "dev", layout.bridge)
    run(ip, "link", "set", layout.bridge, "up")
    for number in layout.numbers:
        namespace, veth = layout.namespace(number), layout.veth(number)
        run(ip, "netns", "add", namespace)
        run(ip, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        run(ip, "link", "set", veth, "master", layout.bridge, "up")
        run(ip, "-n", namespace, "addr", "add", f"{layout.address(number)}/24", "dev", "eth0")
        run(ip, "-n", namespace, "link", "set", "eth0", "up")
        run(ip, "-n", namespace, "link", "set", "lo", "up")
        run(ip, "-n", namespace, "route", "add", "default", "via", layout.gateway)


def postgres_options(layout: Layout, port: int, delay: str = "") -> str:
    options = (
        f"-p {port} -k {layout.root} -c listen_addresses=127.0.0.1,{layout.gateway} "
        "-c shared_buffers=32MB -c max_connections=100 -c hot_standby=on"
    )
    # A replica that applies each commit this long after the primary (CLUSTER_REPLICA_DELAY):
    # lag to watch the routing with.
    return f"{options} -c recovery_min_apply_delay={delay}" if delay else options


def databases_up(layout: Layout, bindir: Path) -> None:
    primary, replica = layout.root / "primary", layout.root / "replica"
    as_postgres(
        str(bindir / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust",
        "--no-locale", "--encoding=UTF8", "--no-sync",
    )  # fmt: skip
    with (primary / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {layout.subnet}.0/24 trust\n")
        hba.write(f"host replication all {layout.subnet}.0/24 trust\n")
    database_start(layout, "primary")
    as_postgres(
        str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(layout.primary_port), "-U", "postgres",
        "-q", "-c", "CREATE DATABASE polls",
    )  # fmt: skip
    # The replica: a copy of the primary that streams its changes from then on (-R writes
    # standby.signal and primary_conninfo).
    as_postgres(
        str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(layout.primary_port),
        "-U", "postgres", "-D", str(replica), "-R", "-X", "stream", "--checkpoint=fast",
        "--no-sync",
    )  # fmt: skip
    database_start(layout, "replica")


def database_stop(layout: Layout, which: str, mode: str = "fast") -> None:
    """Stop the primary or the replica (`which`), as a fault or for maintenance."""
    bindir = postgres_bindir()
    assert bindir is not None
    as_postgres(str(bindir / "pg_ctl"), "-D", str(layout.root / which), "-m", mode, "-w",
                "-t", "60", "stop")  # fmt: skip


def database_start(layout: Layout, which: str) -> None:
    """Start the primary or the replica (`which`) again, with the options `up` gave it."""
    bindir = postgres_bindir()
    assert bindir is not None
    options = (
        postgres_options(layout, layout.primary_port)
        if which == "primary"
        else postgres_options(layout, layout.replica_port, layout.replica_delay)
    )
    as_postgres(
        str(bindir / "pg_ctl"), "-D", str(layout.root / which),
        "-l", str(layout.root / f"{which}.log"), "-o", options, "-w", "-t", "60", "start",
    )  # fmt: skip


def pgbouncer_down(layout: Layout) -> None:
    stop_pids([read_pid(layout.root / "pgbouncer.pid")])
    wait_for("PgBouncer to stop", lambda: not answers("127.0.0.1", layout.pgbouncer_port))


#: PgBouncer's settings for every cluster (and `make bench-scaling`, which measures them): the
#: pool, and how it behaves while the database is down.
PGBOUNCER_SETTINGS = (
    "unix_socket_dir =\nauth_type = any\npool_mode = transaction\n"
    "max_client_conn = 1000\ndefault_pool_size = 20\n"
    "ignore_startup_parameters = extra_float_digits,options\n"
    # While a database is down or restarting, PgBouncer would keep a client's query waiting for
    # a server connection for two minutes (query_wait_timeout) and try to connect again only
    # every 15 s (server_login_retry): the app would hang, then lag the database's return. With
    # these, a query fails within 3 s (the app answers 503 with Retry-After) and PgBouncer
    # reconnects within a second of the database accepting connections.
    "query_wait_timeout = 3\nserver_connect_timeout = 3\nserver_login_retry = 1\n"
)


def haproxy_defaults(directory: Path) -> str:
    """HAProxy's ``defaults`` section for every cluster (and `make bench-scaling`), with the
    API's own 503 written to ``directory``."""
    (directory / "503.http").write_text(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
        '{"detail": "No app host is available; retry shortly.", '
        '"code": "service_unavailable"}\n'
    )
    return f"""defaults
    mode http
    timeout connect 2s
    timeout client 60s
    # A request caught on a host that vanished (its link cut, its machine off) gets a 504
    # after this long instead of a minute's wait; longer than the 15 s between a quiet live
    # results stream's heartbeats, which would otherwise be cut.
    timeout server 20s
    # Only a connection never made is tried again, on another host each time: a ballot is
    # sent once.
    retries 2
    option redispatch 1
    # With no host to send it to (all failing their health checks, as while the database is
    # down) a request gets the API's own 503, JSON with Retry-After, not HAProxy's page.
    errorfile 503 {directory / "503.http"}
"""


def pgbouncer_up(layout: Layout) -> None:
    config = layout.root / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"polls = host=127.0.0.1 port={layout.primary_port} dbname=polls user=postgres\n"
        f"polls_replica = host=127.0.0.1 port={layout.replica_port} dbname=polls user=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1,{layout.gateway}\nlisten_port = {layout.pgbouncer_port}\n"
        f"logfile = {layout.root / 'pgbouncer.log'}\npidfile = {layout.root / 'pgbouncer.pid'}\n"
        + PGBOUNCER_SETTINGS
    )
    config.chmod(0o644)
    as_postgres(program("pgbouncer") or "pgbouncer", "-d", str(config))
    wait_for("PgBouncer", lambda: answers("127.0.0.1", layout.pgbouncer_port))


def haproxy_up(layout: Layout) -> None:
    redis_host, _, rest = layout.redis.partition(":")
    redis_port = rest.split("/")[0] or "6379"
    servers = "\n".join(
        f"    server app{number} {layout.address(number)}:{layout.app_port} "
        "check inter 1s fall 2 rise 2"
        for number in layout.numbers
    )
    config = layout.root / "haproxy.cfg"
    config.write_text(
        f"""global
    maxconn 4000
    pidfile {layout.root / "haproxy.pid"}

{haproxy_defaults(layout.root)}
frontend balancer
    bind 127.0.0.1:{layout.port}
    option forwardfor
    default_backend apps
    # Which host answered, for the curious and for the cluster's tests.
    http-response set-header X-App-Host %[srv_name]

backend apps
    balance roundrobin
    option httpchk
    http-check send meth GET uri /api/health/ ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
{servers}

# The machine's Redis, which listens on its loopback alone, for the app hosts.
listen redis
    mode tcp
    bind {layout.gateway}:{layout.redis_port}
    server redis {redis_host}:{redis_port}
"""
    )
    run(program("haproxy") or "haproxy", "-c", "-q", "-f", str(config))
    run(program("haproxy") or "haproxy", "-D", "-f", str(config))


def host_environment(layout: Layout, number: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in OWN}
    redis_db = layout.redis.partition("/")[2] or "0"
    env.update(
        DATABASE_URL=layout.url(layout.pgbouncer_port),
        DATABASE_REPLICA_URL=layout.url(layout.pgbouncer_port, "polls_replica"),
        DATABASE_LISTEN_URL=layout.url(layout.primary_port),
        DATABASE_TRANSACTION_POOLER="true",
        REDIS_URL=f"redis://{layout.gateway}:{layout.redis_port}/{redis_db}",
        HOST=layout.address(number),
        PORT=str(layout.app_port),
        ALLOWED_HOSTS=",".join(
            ["127.0.0.1", "localhost", *(layout.address(n) for n in layout.numbers)]
        ),
        SECRET_KEY=secret_key(layout),
        STATIC_ROOT=str(layout.root / "static"),
        HTTPS="false",
        # HAProxy appends the client's address to X-Forwarded-For: throttles count clients.
        NUM_PROXIES="1",
        ENV_FILE=os.devnull,
    )
    env.setdefault("WEB_CONCURRENCY", "2")
    return env


def host_health(layout: Layout, number: int) -> Callable[[], bool]:
    """Whether the host answers 200 on /api/health/, straight, not through the balancer."""
    url = f"http://{layout.address(number)}:{layout.app_port}/api/health/"
    return lambda: healthy(url)


def secret_key(layout: Layout) -> str:
    path = layout.root / "secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def site_up(layout: Layout) -> str:
    """Migrate straight on the primary, load the demo polls, collect static files: as
    `make demo` does. The demo administrator's password."""
    env = host_environment(layout, 1)
    env.update(DATABASE_URL=layout.url(layout.primary_port, host="127.0.0.1"), HOST="127.0.0.1")
    env.pop("DATABASE_REPLICA_URL")
    env.pop("DATABASE_LISTEN_URL")
    run(PYTHON, "manage.py", "migrate", "--noinput", env=env, cwd=EXAMPLE_DIR)
    password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(12)
    if os.environ.get("CLUSTER_SEED", "on").lower() not in {"0", "off", "false", "no"}:
        run(PYTHON, "manage.py", "seed_polls", "--password", password, env=env, cwd=EXAMPLE_DIR)
    run(PYTHON, "manage.py", "collectstatic", "--noinput", "--verbosity", "0", env=env,
        cwd=EXAMPLE_DIR)  # fmt: skip
    return password


def app_up(layout: Layout, number: int) -> None:
    log = layout.root / f"app{number}.log"
    run(
        program("ip") or "ip", "netns", "exec", layout.namespace(number),
        PYTHON, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--daemon",
        "--pid", str(layout.root / f"app{number}.pid"),
        "--access-logfile", str(log), "--error-logfile", str(log), "--capture-output",
        env=host_environment(layout, number), cwd=EXAMPLE_DIR,
    )  # fmt: skip


def host_down(layout: Layout, number: int) -> None:
    """Stop the host's Gunicorn (it finishes its requests), then anything left in its namespace."""
    stop_pids([read_pid(layout.root / f"app{number}.pid")])
    left = run(program("ip") or "ip", "netns", "pids", layout.namespace(number), check=False)
    stop_pids([int(pid) for pid in left.stdout.split()], seconds=5)


def up(layout: Layout) -> None:
    previous = Layout.load(layout.root)
    if previous is not None and healthy(f"{previous.balancer}api/health/"):
        say(f"The cluster {previous.name!r} is up already (make cluster-down removes it).")
        report(previous)
        return
    if previous is not None or layout.root.exists():
        say("Removing what is left of an earlier cluster ...")
        down(previous or layout)
    lacking = missing()
    if lacking:
        fail("make cluster needs:\n  " + "\n  ".join(lacking))
    redis_host, _, rest = layout.redis.partition(":")
    if not answers(redis_host, int(rest.split("/")[0] or 6379)):
        fail(f"make cluster needs Redis on {layout.redis} (CLUSTER_REDIS): it does not answer.")
    if answers("127.0.0.1", layout.port):
        fail(f"127.0.0.1:{layout.port} is taken: set CLUSTER_PORT to a free port.")
    for port in range(layout.database_port, layout.database_port + 4):
        if answers("127.0.0.1", port):
            fail(f"127.0.0.1:{port} is taken: set CLUSTER_DB_PORT to the first of four free ports.")
    bindir = postgres_bindir()
    assert bindir is not None
    started = time.monotonic()
    layout.root.mkdir(mode=0o755)
    shutil.chown(layout.root, user="postgres")
    (layout.root / "cluster.json").write_text(json.dumps(asdict(layout)))
    say(f"Network: bridge {layout.bridge} ({layout.gateway}/24), {layout.hosts} namespaces ...")
    network_up(layout)
    say("PostgreSQL: the primary, its replica (pg_basebackup), PgBouncer ...")
    databases_up(layout, bindir)
    pgbouncer_up(layout)
    say("The site: migrate, demo polls, static files ...")
    password = site_up(layout)
    (layout.root / "demo-password").write_text(password)
    (layout.root / "demo-password").chmod(0o600)
    say("Gunicorn on each host, HAProxy in front ...")
    for number in layout.numbers:
        app_up(layout, number)
    for number in layout.numbers:
        wait_for(f"app host {number}", host_health(layout, number))
    haproxy_up(layout)
    wait_for("the balancer", lambda: healthy(f"{layout.balancer}api/health/"))
    say(f"Up in {time.monotonic() - started:.0f} s.")
    report(layout)


def report(layout: Layout) -> None:
    password = (layout.root / "demo-password").read_text().strip()
    hosts = ", ".join(f"{layout.address(n)}:{layout.app_port}" for n in layout.numbers)
    say(
        f"\n  app hosts  {hosts} (namespaces {layout.namespace(1)} ...)"
        f"\n  primary    {layout.url(layout.primary_port, host='127.0.0.1')}"
        f"\n  replica    {layout.url(layout.replica_port, host='127.0.0.1')}"
        f"\n  pgbouncer  {layout.url(layout.pgbouncer_port, host='127.0.0.1')} (and polls_replica)"
        f"\n  logs       {layout.root}/*.log"
        f"\n  demo user  demo / {password}"
        f"\n\nbalancer: {layout.balancer}"
    )


# -- down ---------------------------------------------------------------------------------------


def down(layout: Layout) -> None:
    root = layout.root
    ip = program("ip") or "ip"
    hosts = range(1, max(layout.hosts, 3) + 1)
    # The balancer and every host's Gunicorn at once (each finishes its requests), then anything
    # else still running in a namespace, which the cluster started too.
    stop_pids(
        [read_pid(root / "haproxy.pid"), *(read_pid(root / f"app{number}.pid") for number in hosts)]
    )
    left = [run(ip, "netns", "pids", layout.namespace(number), check=False) for number in hosts]
    stop_pids([int(pid) for listed in left for pid in listed.stdout.split()], seconds=5)
    for number in hosts:
        run(ip, "netns", "delete", layout.namespace(number), check=False)
        run(ip, "link", "delete", layout.veth(number), check=False)
    stop_pids([read_pid(root / "pgbouncer.pid")])
    bindir = postgres_bindir()
    for data in (root / "replica", root / "primary"):
        if (data / "postmaster.pid").exists():
            if bindir is not None:
                as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t",
                            "30", "stop", check=False)  # fmt: skip
            if (data / "postmaster.pid").exists():
                stop_pids([read_pid(data / "postmaster.pid")])
    run(ip, "link", "delete", layout.bridge, check=False)
    shutil.rmtree(root, ignore_errors=True)


def host_of(layout: Layout, argv: list[str]) -> tuple[Layout, int]:
    """The cluster that is up and the host number that ``host-up N`` or ``host-down N`` names."""
    loaded = Layout.load(layout.root)
    if loaded is None:
        fail(f"No cluster {layout.name!r} is up (make cluster).")
    assert loaded is not None
    number = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 0
    if number not in loaded.numbers:
        fail(f"{argv[0]} takes a host number, 1 to {loaded.hosts}.")
    return loaded, number


def main(argv: list[str]) -> None:
    command = next(iter(argv), "up")
    layout = Layout.from_environment()
    if command == "up":
        up(layout)
    elif command == "down":
        if os.geteuid() != 0:
            fail("make cluster-down needs root, as make cluster did.")
        down(Layout.load(layout.root) or layout)
        say(f"The cluster {layout.name!r} is gone (namespaces, processes, data).")
    elif command == "host-up":
        # A host brought back (after a fault, say) with the settings of this environment.
        loaded, number = host_of(layout, argv)
        app_up(loaded, number)
        wait_for(f"app host {number}", host_health(loaded, number))
        say(f"App host {number} is up.")
    elif command == "host-down":
        # A host's Gunicorn stopped gracefully (its requests finish), to start it again with
        # other settings, say: the balancer takes it out after two failed health checks.
        loaded, number = host_of(layout, argv)
        host_down(loaded, number)
        say(f"App host {number} is down.")
    elif command == "check":
        lacking = missing()
        if lacking:
            fail("make cluster needs:\n  " + "\n  ".join(lacking))
        say("Everything make cluster needs is here.")
    else:
        fail(__doc__ or "")


if __name__ == "__main__":
    main(sys.argv[1:])
