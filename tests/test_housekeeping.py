"""Housekeeping (azure_shim/housekeeping.py): the timer-triggered purge of finished instances' history,
run as the host runs it (a real func.TimerRequest, the real DurableOrchestrationClient built from a
client binding) against the local host's task hub, which answers the extension's purge RPC."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from tests import test_azure_starter as starter
from tests.test_azure_starter import config, start, wait_done

app_server, gate = starter.app_server, starter.gate  # the starter tests' fixtures: a local host, a held source


def purge(server, environ_age: str | None = None, monkeypatch=None):
    import azure.functions as func

    if monkeypatch is not None and environ_age is not None:
        monkeypatch.setenv("PIPELINE_PURGE_AFTER_DAYS", environ_age)
    fn = {f.get_function_name(): f for f in server.hub_functions}["purge_history"].get_user_function()
    timer = func.TimerRequest(past_due=False)
    asyncio.run_coroutine_threadsafe(fn(timer=timer, client=server.client_binding()), server.loop).result(30)


def age(server, instance_id: str, days: float) -> None:
    """Make an instance look created `days` ago (the hub records when each was created)."""
    inst = server.hub.get(instance_id)
    inst.created = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).isoformat().replace("+00:00", "Z")


def run(server, tmp_path, instance_id: str, good: bool = True) -> None:
    src = tmp_path / f"{instance_id}.jsonl"
    src.write_text('{"id": 1}\n' if good else '{"id": \n')
    start(server, {"config": config({"type": "local", "path": str(src)}, tmp_path / "out"), "instance_id": instance_id,
                   "retry": {"max_attempts": 1}})
    assert wait_done(server, instance_id).runtime_status == ("Completed" if good else "Failed")


def test_old_finished_instances_are_purged_running_and_recent_ones_kept(app_server, gate, tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_PURGE_AFTER_DAYS", raising=False)
    run(app_server, tmp_path, "old-completed")
    run(app_server, tmp_path, "old-failed", good=False)
    run(app_server, tmp_path, "recent-completed")
    url, opened = gate
    start(app_server, {"config": config({"type": "http", "url": url}, tmp_path / "out2"), "instance_id": "old-running"})
    age(app_server, "old-completed", 31)
    age(app_server, "old-failed", 45)
    age(app_server, "recent-completed", 29)  # within the default 30 days
    age(app_server, "old-running", 90)
    purge(app_server)
    left = {i.instance_id for i in app_server.hub.instances()}
    assert left == {"recent-completed", "old-running"}
    opened.set()
    assert wait_done(app_server, "old-running").runtime_status == "Completed"


def test_the_age_is_an_app_setting(app_server, tmp_path, monkeypatch):
    run(app_server, tmp_path, "a")
    run(app_server, tmp_path, "b")
    age(app_server, "a", 8)
    age(app_server, "b", 6)
    purge(app_server, "7", monkeypatch)
    assert {i.instance_id for i in app_server.hub.instances()} == {"b"}
    purge(app_server, "7", monkeypatch)  # nothing left to purge: the extension answers 404, which is no error
    assert {i.instance_id for i in app_server.hub.instances()} == {"b"}


@pytest.mark.parametrize("value", ["0", "-3", "thirty", "99999"])
def test_a_bad_age_setting_fails_naming_it(value):
    from azure_shim.housekeeping import purge_age

    with pytest.raises(ValueError, match="PIPELINE_PURGE_AFTER_DAYS must be a whole number of days"):
        purge_age({"PIPELINE_PURGE_AFTER_DAYS": value})
    assert purge_age({}) == dt.timedelta(days=30)


def test_the_purge_route_wants_a_key_and_a_lower_bound(app_server, tmp_path):
    """The public purge route (purgeHistoryDeleteUri) takes the system key like the status route."""
    import urllib.error
    import urllib.request

    run(app_server, tmp_path, "gone")
    body = json.loads(start(app_server, {"config": config({"type": "local", "path": str(tmp_path / "gone.jsonl")},
                                                             tmp_path / "out"), "instance_id": "gone"}).get_body())
    url = body["purgeHistoryDeleteUri"]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url.split("?")[0], method="DELETE"))
    assert info.value.code == 401
    assert app_server.hub.get("gone") is not None
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE")) as resp:
        assert resp.status == 200 and json.loads(resp.read()) == {"instancesDeleted": 1}
    assert app_server.hub.get("gone") is None
    many = url.replace("/instances/gone?", "/instances/?")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(many, method="DELETE"))
    assert info.value.code == 400  # purging many needs createdTimeFrom, as the extension's API does
