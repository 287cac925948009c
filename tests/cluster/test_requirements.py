"""Without root or a program it needs, `make cluster` says exactly what is missing and exits 1,
building nothing. Runs anywhere: the script is asked, nothing is built."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import load_script


def test_make_cluster_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script()
    monkeypatch.setattr(script.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(script, "program", lambda name: None if name == "haproxy" else name)
    monkeypatch.setattr(script, "postgres_bindir", lambda: None)
    monkeypatch.setenv("CLUSTER_NAME", "nothere")
    with pytest.raises(SystemExit) as stopped:
        script.main(["up"])
    assert stopped.value.code == 1
    said = capsys.readouterr().err
    assert "root: network namespaces and bridges need it" in said
    assert "haproxy: not installed (Debian: apt-get install haproxy)" in said
    assert "PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup): not found" in said
    assert "pgbouncer" not in said


def test_cluster_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    script = load_script()
    monkeypatch.setenv("CLUSTER_SUBNET", "8.8.8")
    with pytest.raises(SystemExit):
        script.Layout.from_environment()
    monkeypatch.setenv("CLUSTER_SUBNET", "10.9.0")
    monkeypatch.setenv("CLUSTER_NAME", "much-too-long-a-name")
    with pytest.raises(SystemExit):
        script.Layout.from_environment()
