"""Dashboard JSON/image API over real HTTP against a real SecantusDB with stored attempts (no mocks)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from bson import ObjectId
from conftest import DASHBOARD_TIMINGS

from myriad_frontend.dashboard.jsonutil import dumps
from myriad_storage.codec import decode_png, png_to_depth
from myriad_storage.store import Store

N_ALPHA, N_BETA = 12, 3


def get(url: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(url: str, **kw) -> tuple[int, dict]:
    status, headers, body = get(url, **kw)
    assert headers["Content-Type"].startswith("application/json"), (status, body[:200])
    return status, json.loads(body)


@pytest.fixture(scope="module")
def seeded(mongo_uri, dashboard_attempt):
    """A database with campaigns alpha (12 of 16 items done) and beta (3 of 4), images in GridFS."""
    name = f"test_dash_{uuid.uuid4().hex[:10]}"
    store = Store(mongo_uri, name)
    store.ensure_indexes()
    store.create_campaign("alpha", [{"seed": i} for i in range(16)])
    store.create_campaign("beta", [{"seed": 100 + i} for i in range(4)])
    images = {}
    for i in range(N_ALPHA):
        rec, ims = dashboard_attempt("alpha", i, backend=f"b{i % 3}", success=i % 3 == 0)
        store.store_attempt(rec, ims)
        images[rec["attempt_key"]] = ims
    for i in range(N_BETA):
        rec, ims = dashboard_attempt("beta", i, backend="b9", success=False)
        store.store_attempt(rec, ims)
        images[rec["attempt_key"]] = ims
    store.claim("alpha", "b1", lease_s=600)
    store.heartbeat("b1", host="localhost", state="running", campaign="alpha", current_item="alpha/000012")
    yield store, name, images
    store.client.drop_database(name)
    store.close()


@pytest.fixture(scope="module")
def dash(seeded, mongo_uri):
    from myriad_frontend.dashboard import serve

    server = serve(mongo_uri, seeded[1], port=0, poll_interval_s=0.25)
    yield server
    server.stop()


def samples(dash, **params) -> dict:
    q = urllib.parse.urlencode(params)
    status, body = get_json(f"{dash.url}api/samples?{q}")
    assert status == 200, body
    return body


def wait_overview(dash, pred, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, body = get_json(dash.url + "api/overview")
        if pred(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_overview_counts_progress_and_backends(dash):
    def ready(o):
        return not o["loading"] and all(c["items"] for c in o["campaigns"])

    o = wait_overview(dash, ready)
    by = {c["name"]: c for c in o["campaigns"]}
    assert (
        by["alpha"]["attempts"] == N_ALPHA and by["alpha"]["successes"] == 4 and by["alpha"]["target"] == 16
    )
    assert by["alpha"]["items"]["done"] == N_ALPHA and by["alpha"]["items"]["leased"] == 1
    assert by["beta"]["attempts"] == N_BETA and by["beta"]["success_rate"] == 0
    assert sum(by["alpha"]["timeline"]["attempts"]) == N_ALPHA
    time_ = by["alpha"]["items"]["time"]  # where the time goes: every stored attempt has DASHBOARD_TIMINGS
    assert time_["attempts"] == N_ALPHA and list(time_["phases"]) == list(DASHBOARD_TIMINGS)
    assert time_["phases"] == pytest.approx(DASHBOARD_TIMINGS)
    assert by["alpha"]["rate"] > 0 and by["alpha"]["eta_s"] > 0
    assert [b["backend"] for b in o["backends"]] == ["b1"] and o["backends"][0][
        "current_item"
    ] == "alpha/000012"


def test_samples_filters(dash, seeded):
    def keys(**p):
        return {a["attempt_key"] for a in samples(dash, limit=200, **p)["items"]}

    alpha = {f"alpha/{i:06d}/0" for i in range(N_ALPHA)}
    assert keys(campaign="alpha") == alpha
    assert len(keys()) == N_ALPHA + N_BETA
    assert keys(campaign="alpha", label="success") == {f"alpha/{i:06d}/0" for i in range(0, N_ALPHA, 3)}
    assert keys(campaign="alpha", label="failure") == alpha - keys(campaign="alpha", label="success")
    assert keys(backend="b1") == {f"alpha/{i:06d}/0" for i in range(1, N_ALPHA, 3)}
    assert keys(backend="b9") == {f"beta/{i:06d}/0" for i in range(N_BETA)}
    assert keys(campaign="alpha", object="obj2") == {f"alpha/{i:06d}/0" for i in (2, 6, 10)}
    src = "pybullet_data:random_urdfs/001/001.urdf"
    assert keys(source=src) == {f"alpha/{i:06d}/0" for i in (1, 5, 9)} | {"beta/000001/0"}
    assert keys(outcome="slipped", campaign="beta") == {f"beta/{i:06d}/0" for i in range(N_BETA)}
    store = seeded[0]
    docs = store.attempts({"campaign": "alpha"}, sort=[("created_at", 1)])
    cut = docs[5]["created_at"]
    later = {d["attempt_key"] for d in docs if d["created_at"] >= cut}
    assert keys(campaign="alpha", since=cut.isoformat()) == later
    assert keys(campaign="alpha", until=cut.isoformat()) == alpha - later
    assert keys(campaign="alpha", since=str(cut.timestamp())) == later  # epoch seconds too


def test_samples_pagination_newest_first(dash):
    seen, skip = [], 0
    while True:
        page = samples(dash, campaign="alpha", limit=5, skip=skip)
        seen += page["items"]
        assert len(page["items"]) <= 5
        if not page["has_more"]:
            break
        skip += 5
    assert skip == 10 and len(seen) == N_ALPHA == len({a["attempt_key"] for a in seen})
    times = [a["created_at"] for a in seen]
    assert times == sorted(times, reverse=True)
    assert samples(dash, campaign="alpha", skip=100)["items"] == []


def test_times_sort_as_strings():
    """Times always carry milliseconds (BSON's precision): a whole second once lost its fraction, and
    '...:12Z' sorted after '...:12.176Z'."""
    times = [
        datetime(2026, 12, 2, 1, 30, 12, 176000, tzinfo=UTC),
        datetime(2026, 12, 2, 1, 30, 12, tzinfo=UTC),
    ]
    encoded = json.loads(dumps(times))
    assert (
        encoded == ["2026-12-02T01:30:12.176Z", "2026-12-02T01:30:12.000Z"] == sorted(encoded, reverse=True)
    )


def test_image_streams_byte_equal_to_gridfs(dash, seeded):
    store, _, images = seeded
    key = "alpha/000003/0"
    status, doc = get_json(f"{dash.url}api/attempt?key={key}")
    assert status == 200 and doc["attempt_key"] == key and doc["extra"]["outcome"] == "lifted"
    for name in ("pre_rgb", "pre_depth", "pre_segmentation", "post_rgb"):
        status, headers, body = get(f"{dash.url}api/image?id={doc['images'][name]}")
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert body == store.image(ObjectId(doc["images"][name])) == images[key][name]


def test_rendered_depth_segmentation_and_grasp(dash, seeded, dashboard_attempt, world_capture):
    """Renderings of a real capture: colour-map ends at the nearest and farthest depth, one distinct colour
    per body, the grasp drawn where its point projects."""
    import cv2

    store = seeded[0]
    name, (_body, position) = next(iter(world_capture["objects"].items()))
    record, _ = dashboard_attempt("real", 0)
    record.update(grasp={"x": position[0], "y": position[1], "z": position[2], "yaw": 0.5})
    store.store_attempt(record, {**world_capture["images"], "post_rgb": world_capture["images"]["pre_rgb"]})
    rendered = {}
    for kind in ("depth", "segmentation", "grasp"):
        status, headers, body = get(f"{dash.url}api/render?key={record['attempt_key']}&kind={kind}")
        assert status == 200 and headers["Content-Type"] == "image/png", body[:200]
        rendered[kind] = decode_png(body)
        assert rendered[kind].shape == (472, 472, 3) and rendered[kind].dtype == np.uint8
    depth = png_to_depth(world_capture["images"]["pre_depth"])
    turbo = cv2.applyColorMap(np.array([[255, 0]], np.uint8), cv2.COLORMAP_TURBO)[0, :, ::-1]
    near = np.unravel_index(np.argmin(np.where(depth > 0, depth, np.inf)), depth.shape)
    far = np.unravel_index(np.argmax(depth), depth.shape)
    assert rendered["depth"][near].tolist() == turbo[0].tolist()  # warm end
    assert rendered["depth"][far].tolist() == turbo[1].tolist()  # cold end
    seg, colours = world_capture["frame"].segmentation, {}
    for body in np.unique(seg):  # one colour per body (OpenCV's HSV conversion may differ by 1 across pixels)
        pixels = rendered["segmentation"][seg == body].astype(int)
        colours[int(body)] = np.median(pixels, axis=0)
        assert np.abs(pixels - colours[int(body)]).max() <= 1, f"body {body} is not one colour"
    assert len(colours) >= 5  # table, tray and the three objects
    for a in colours:
        for b in colours:
            assert a == b or np.abs(colours[a] - colours[b]).max() > 30, f"bodies {a} and {b} look alike"
    u, v = (int(round(c)) for c in world_capture["camera"].project(position))
    assert rendered["grasp"][v, u].tolist() == [255, 230, 0]  # the grasp centre marker
    changed = np.argwhere(np.any(rendered["grasp"] != world_capture["frame"].rgb, axis=2))
    assert len(changed) > 50 and np.abs(changed - [v, u]).max() < 60  # drawn around it, nowhere else


@pytest.mark.parametrize(
    "path",
    [
        "api/attempt?key=alpha/999999/0",
        "api/attempt",
        f"api/image?id={ObjectId()}",
        "api/image?id=not-an-id",
        "api/render?key=nope&kind=depth",
        "api/work_items?campaign=nope",
        "api/nothing",
    ],
)
def test_unknown_ids_are_404_json(dash, path):
    status, body = get_json(dash.url + path)
    assert status == 404 and body["error"]


@pytest.mark.parametrize(
    "path",
    ["api/samples?limit=0", "api/samples?skip=-1", "api/samples?label=maybe", "api/samples?since=yesterday"],
)
def test_bad_parameters_are_400(dash, path):
    status, body = get_json(dash.url + path)
    assert status == 400 and body["error"]


def test_work_items_states_and_pages(dash):
    status, body = get_json(f"{dash.url}api/work_items?campaign=alpha&limit=5")
    assert status == 200 and [w["index"] for w in body["items"]] == [0, 1, 2, 3, 4] and body["has_more"]
    _, leased = get_json(f"{dash.url}api/work_items?campaign=alpha&state=leased")
    assert [(w["item_id"], w["lease_owner"]) for w in leased["items"]] == [("alpha/000012", "b1")]
    _, pending = get_json(f"{dash.url}api/work_items?campaign=alpha&state=pending")
    assert [w["index"] for w in pending["items"]] == [13, 14, 15] and not pending["has_more"]


def test_read_only_and_static_page(dash):
    status, headers, body = get(dash.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"app.js" in body
    assert get(dash.url + "app.js")[0] == 200 and get(dash.url + "app.css")[0] == 200
    assert get(dash.url + "api/samples", method="POST")[0] == 405
    assert get(dash.url + "api/samples", method="DELETE")[0] == 405


def test_foreign_host_header_refused_without_token(dash):
    port = dash.server_address[1]
    assert get(dash.url + "api/overview", headers={"Host": f"evil.example:{port}"})[0] == 401
    assert get(dash.url + "api/overview", headers={"Host": f"localhost:{port}"})[0] == 200


def test_token_required_on_every_request(seeded, dashboard_serve):
    token = "s3cret/tok+en="  # needs quoting in URLs and cookies
    server = dashboard_serve(seeded[1], token=token)
    base = server.url.split("?")[0]
    assert server.url == base + "?token=" + urllib.parse.quote(token, safe="")
    for path in (
        "",
        "app.js",
        "api/overview",
        "api/samples",
        "api/attempt?key=alpha/000000/0",
        "api/image?id=x",
    ):
        status, _, _ = get(base + path)
        assert status == 401, path
        assert get(base + path, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert get(base + "api/samples", headers={"Authorization": f"Bearer {token}"})[0] == 200
    status, headers, _ = get(server.url)
    assert status == 200 and "HttpOnly" in headers["Set-Cookie"]
    cookie = headers["Set-Cookie"].split(";")[0]
    assert get(base + "api/overview", headers={"Cookie": cookie})[0] == 200
    assert get(base + "api/samples?token=wrong")[0] == 401


def test_non_loopback_bind_needs_token(mongo_uri):
    from myriad_frontend.dashboard import serve

    with pytest.raises(ValueError, match="requires a token"):
        serve(mongo_uri, "unused", host="0.0.0.0", port=0)  # refused before any socket is bound


def test_main_runs_standalone_and_stops_on_sigterm(mongo_uri, seeded):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cmd = [sys.executable, "-m", "myriad_frontend.dashboard", "--mongo-uri", mongo_uri]
    cmd += ["--database", seeded[1], "--port", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Myriad dashboard: http://127.0.0.1:"), (
            line,
            proc.stderr.read() if proc.poll() else "",
        )
        url = line.split(": ", 1)[1].strip()
        assert get(url + "api/samples?campaign=beta")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_models_list_records_and_collection_results(storage_store, dashboard_serve, dashboard_attempt,
                                                    dashboard_model):  # fmt: skip
    """Model records newest first, each with its collected results over every campaign that ran it."""
    from myriad_learning.metrics import wilson

    store = storage_store
    server = dashboard_serve(store.db.name)
    assert get_json(server.url + "api/models") == (200, [])  # an empty database
    # (campaign, index, strategy, model_version, label: True/False, or None when no grasp was executed)
    plan = [("la", i, "learned", "v1", lab) for i, lab in enumerate((True, True, True, False, False, None))]
    plan += [("la", i, "object", "", True) for i in range(6, 10)]  # no version
    plan += [("lb", i, "learned", "v1", i == 0) for i in range(4)]
    plan += [("lb", i, "learned", "v2", lab) for i, lab in zip(range(4, 8), (True, True, False, None))]
    plan += [("lb", 8, "object", "v2", True)]  # carries a version (a sweep's template) without using it
    store.create_campaign("la", [{"seed": i} for i in range(10)])
    store.create_campaign("lb", [{"seed": i} for i in range(9)])
    for campaign, i, strategy, version, label in plan:
        record, images = dashboard_attempt(campaign, i, success=bool(label))
        record["params"] = {"seed": i, "strategy": strategy, "model_version": version}
        record.update(success=label, grasp_executed=label is not None)
        store.store_attempt(record, images)
    versions = [dashboard_model(store, c, seed) for seed, c in enumerate((["r1"], ["r1", "r2"], ["r2"]))]
    assert versions == ["v1", "v2", "v3"]
    records = {r["version"]: r for r in store.db.models.find({}, {"_id": False})}

    status, models = get_json(server.url + "api/models")
    assert status == 200 and [m["version"] for m in models] == ["v3", "v2", "v1"]
    collected = {m["version"]: m.pop("collected") for m in models}
    assert collected == {
        "v1": {"attempts": 10, "executed": 9, "successes": 4, "campaigns": ["la", "lb"],
               "success_rate": 4 / 9, "interval": list(wilson(4, 9))},
        "v2": {"attempts": 4, "executed": 3, "successes": 2, "campaigns": ["lb"],
               "success_rate": 2 / 3, "interval": list(wilson(2, 3))},
        "v3": {"attempts": 0, "executed": 0, "successes": 0, "campaigns": [],
               "success_rate": None, "interval": None},
    }  # fmt: skip
    assert collected["v1"]["interval"] == pytest.approx([0.1888, 0.7334], abs=1e-4)  # 4 of 9, by hand
    for m in models:  # the stored record as the other routes encode documents, without the weights' file id
        record = records[m["version"]]
        assert "file_id" in record and "file_id" not in m
        assert m == json.loads(dumps({k: v for k, v in record.items() if k != "file_id"}))
        assert m["created_at"].endswith("Z")
        assert m["metrics"]["validation"]["n"] == 50 and m["validation"] == 50
    assert models[2]["campaigns"] == ["r1"] and models[1]["campaigns"] == ["r1", "r2"]
