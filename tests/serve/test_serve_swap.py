"""Hot model swap: a new model is loaded in the background and swapped in without failing a request."""

from __future__ import annotations

import dataclasses
import threading
import time

import httpx
import pytest

from colisten.serve.app import create_app
from colisten.serve.state import ModelBundle, ModelState, ReloadInProgress, load_bundle


def test_swap_under_concurrent_load_fails_no_request(toy_run, other_toy_run, toy_bundle, live_server):
    old_version = toy_bundle.version
    shared_users = sorted(
        set(toy_bundle.users.user_ids) & set(load_bundle(other_toy_run, verify_users=0).users.user_ids)
    )
    app = create_app(toy_run, bundle=toy_bundle)
    swapped = threading.Event()
    seen: list[list[tuple[int, str | None]]] = [[] for _ in range(8)]

    def worker(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            after_swap = 0
            for n in range(3000):
                if i % 2:
                    r = client.post("/v1/recommendations", json={"history": [{"item_id": "p00001"}], "k": 5})
                else:
                    user = shared_users[(i * 131 + n) % len(shared_users)]
                    r = client.get(
                        f"/v1/users/{user}/recommendations", params={"type": ("audiobook", "podcast")[n % 2]}
                    )
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                seen[i].append((r.status_code, body.get("model_version")))
                if swapped.is_set():
                    after_swap += 1
                    if after_swap >= 25:
                        return

    with live_server(app) as base:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        reload = httpx.post(
            f"{base}/admin/reload", params={"wait": "true"}, json={"run": str(other_toy_run)}, timeout=120
        )
        swapped.set()
        for t in threads:
            t.join(timeout=120)
        health = httpx.get(f"{base}/healthz").json()

    assert reload.status_code == 200, reload.text
    new_version = reload.json()["version"]
    assert new_version != old_version and health["model_version"] == new_version
    statuses = [s for w in seen for s, _ in w]
    assert len(statuses) > 100
    assert set(statuses) == {200}, "a request failed during the swap"
    for w in seen:
        versions = [v for _, v in w]
        assert set(versions) <= {old_version, new_version}
        # once a worker got an answer from the new model, it never sees the old one again
        first_new = versions.index(new_version)
        assert old_version not in versions[first_new:]
    assert any(v == old_version for w in seen for _, v in w)


class _SlowBundle(ModelBundle):
    """A bundle whose recommendations take a while, to have a request in flight during a swap."""

    def recommend(self, *args, **kwargs):
        time.sleep(1.0)
        return super().recommend(*args, **kwargs)


def test_requests_in_flight_finish_on_the_old_model(toy_run, other_toy_run, toy_bundle, live_server):
    slow = _SlowBundle(**{f.name: getattr(toy_bundle, f.name) for f in dataclasses.fields(ModelBundle)})
    app = create_app(toy_run, bundle=slow)
    answer: dict = {}
    with live_server(app) as base:
        t = threading.Thread(
            target=lambda: answer.update(
                httpx.get(f"{base}/v1/users/u000003/recommendations", timeout=60).json()
            )
        )
        t.start()
        time.sleep(0.2)
        reload = httpx.post(
            f"{base}/admin/reload", params={"wait": "true"}, json={"run": str(other_toy_run)}, timeout=120
        )
        t.join(timeout=60)
        after = httpx.get(f"{base}/v1/users/u000003/recommendations", timeout=60).json()
    assert reload.status_code == 200
    assert answer["model_version"] == toy_bundle.version and len(answer["items"]) == 10
    assert after["model_version"] == reload.json()["version"] != toy_bundle.version


def test_failed_reload_keeps_serving_the_old_model(toy_run, toy_bundle, tmp_path, live_server):
    (tmp_path / "empty_run").mkdir()
    app = create_app(toy_run, bundle=toy_bundle)
    with live_server(app) as base:
        missing = httpx.post(f"{base}/admin/reload", json={"run": str(tmp_path / "nope")})
        broken = httpx.post(
            f"{base}/admin/reload?wait=true", json={"run": str(tmp_path / "empty_run")}, timeout=60
        )
        status = httpx.get(f"{base}/admin/reload").json()
        health = httpx.get(f"{base}/healthz").json()
        ok = httpx.get(f"{base}/v1/users/u000003/recommendations")
        metrics = httpx.get(f"{base}/metrics").text
    assert missing.status_code == 422 and "run directory not found" in missing.json()["detail"]
    assert broken.status_code == 422
    assert "still serving " + toy_bundle.version in broken.json()["detail"]
    assert "train-2t" in broken.json()["detail"]  # names the command that makes the missing artifact
    assert status["state"] == "failed" and health["model_version"] == toy_bundle.version
    assert ok.status_code == 200
    assert 'colisten_model_reloads_total{outcome="failed"} 1.0' in metrics


def test_background_reload_swaps_and_a_second_one_is_refused(toy_bundle, other_toy_run):
    release = threading.Event()
    swapped: list[str] = []

    def slow_loader(run):
        release.wait(30)
        return load_bundle(run, verify_users=0)

    state = ModelState(toy_bundle, slow_loader, on_swap=lambda b: swapped.append(b.version))
    held = state.bundle  # what a request in flight holds
    thread = state.reload_in_background(other_toy_run)
    assert state.status.state == "loading"
    with pytest.raises(ReloadInProgress):
        state.reload_in_background()
    with pytest.raises(ReloadInProgress):
        state.reload()
    assert state.bundle is toy_bundle  # still serving the old model while the new one loads
    release.set()
    thread.join(60)
    assert state.status.state == "swapped" and state.bundle.version != toy_bundle.version
    assert swapped == [toy_bundle.version, state.bundle.version]
    # the old bundle a request still holds keeps working after the swap
    assert len(held.recommend(held.known_user_query(3), "audiobook", 5).items) == 5


def test_a_reload_loads_in_a_low_priority_thread_and_restores_the_switch_interval(toy_bundle, other_toy_run):
    """The loader runs behind the requests (state.background_priority): in a thread that is not
    the caller's, niced to 19 on Linux, with a short GIL switch interval that ends with the load."""
    import os
    import sys

    from colisten.serve.state import RELOAD_SWITCH_INTERVAL_S

    seen = {}

    def loader(run):
        seen["thread"] = threading.get_native_id()
        seen["interval"] = sys.getswitchinterval()
        if sys.platform.startswith("linux"):
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, seen["thread"])
        return load_bundle(run, verify_users=0)

    before = sys.getswitchinterval()
    state = ModelState(toy_bundle, loader)
    assert state.reload(other_toy_run).state == "swapped"
    assert seen["thread"] != threading.get_native_id()
    assert seen["interval"] == RELOAD_SWITCH_INTERVAL_S < before == sys.getswitchinterval()
    if sys.platform.startswith("linux"):
        assert seen["nice"] == 19 and os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != 19

    def failing(run):
        raise ValueError("broken run")

    state = ModelState(toy_bundle, failing)
    with pytest.raises(ValueError, match="broken run"):  # the loader's error reaches the caller
        state.reload(other_toy_run)
    assert state.status.state == "failed" and sys.getswitchinterval() == before


def test_overlapping_loads_share_the_short_switch_interval_and_the_last_restores_it():
    """The switch interval is the process's: two loads whose windows overlap (first ends first)
    keep it short until both end, and the original comes back, not the first load's short one."""
    import sys

    from colisten.serve.state import RELOAD_SWITCH_INTERVAL_S, background_priority

    before = sys.getswitchinterval()
    first_in, first_out, second_done = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first():
        with background_priority():
            first_in.set()
            first_out.wait(10)

    def second():
        first_in.wait(10)
        with background_priority():
            first_out.set()
            time.sleep(0.05)
            seen.append(sys.getswitchinterval())  # the first has ended by now
        second_done.set()

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert second_done.is_set() and seen == [RELOAD_SWITCH_INTERVAL_S]
    assert sys.getswitchinterval() == before
