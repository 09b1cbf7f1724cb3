"""The review app's JSON API, database, security and overlays, on the COCO sample's
fits (EFT on real keypoints and images) written to an annotation file."""

from __future__ import annotations

import math
import multiprocessing
import socket
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import live_server, require_module

for _mod in ("fastapi", "httpx", "uvicorn"):  # the review extra; CI installs it (dev)
    require_module(_mod, "pip install -e '.[review]'", module_level=True)


with warnings.catch_warnings():  # Starlette's note on httpx vs httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from eft.review import ReviewDB, ReviewError, accepted_ids, latest_decisions  # noqa: E402
from eft.review.app import ReviewConfig, create_app  # noqa: E402
from eft.review.catalog import Catalog  # noqa: E402

SIZE = 160  # overlay tile px (small: fast)


@pytest.fixture(scope="module")
def review_files(coco_fits, shared_data, tmp_path_factory):
    """``(annotation file, image root, exemplars, fits)``."""
    from eft.annotations import AnnotationSet, Provenance, write_annotations

    exemplars, fits = coco_fits
    aset = AnnotationSet.from_fits(fits, exemplars, Provenance.create(dataset="coco"))
    path = write_annotations(aset, tmp_path_factory.mktemp("review") / "fits.json")
    return Path(path), shared_data / "coco_sample", exemplars, fits


def make_app(files, tmp_path, **kw):
    path, root, _, _ = files
    kw.setdefault("allowed_hosts", ("testserver",))
    cfg = ReviewConfig(annotations=path, images=root, db=tmp_path / "review.sqlite",
                       annotator="ann", overlay_size=SIZE, **kw)
    return create_app(cfg)


@pytest.fixture
def client(review_files, tmp_path):
    return TestClient(make_app(review_files, tmp_path))


def post(client, fit_id, decision, annotator="ann", note=""):
    return client.post("/api/decisions", json={"fit_id": fit_id, "decision": decision,
                                               "annotator": annotator, "note": note})


def raw_get(port: int, target: str) -> int:
    """HTTP status of a GET sent byte for byte (no client-side URL normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     "Connection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


# -- queue, fit, progress ----------------------------------------------------------------

def test_info_and_progress(client, review_files):
    _, _, exemplars, fits = review_files
    info = client.get("/api/info").json()
    assert info["count"] == len(fits) == 12
    assert info["datasets"] == ["coco"]
    want_flags = sorted({f for fit in fits for f in fit.quality.flags})
    assert info["flags"] == want_flags
    assert info["progress"] == {"unreviewed": 12, "accepted": 0, "rejected": 0,
                                "flagged": 0, "total": 12, "reviewed": 0}
    assert info["provenance"]["dataset"] == "coco"
    assert client.get("/api/progress").json() == info["progress"]


def test_queue_sort_and_pagination(client, review_files):
    _, _, _, fits = review_files
    q = {f.exemplar_id: f.quality for f in fits}
    worst = sorted(q, key=lambda k: (q[k].accepted, -q[k].reproj_frac_bbox,
                                     -q[k].loss_2d_final))  # auto-rejected first
    pages = []
    for offset in (0, 5, 10):
        page = client.get("/api/fits", params={"sort": "quality", "offset": offset,
                                                "limit": 5}).json()
        assert page["total"] == 12 and page["offset"] == offset
        pages += [it["id"] for it in page["items"]]
    assert pages == worst
    first = client.get("/api/fits", params={"limit": 1}).json()["items"][0]
    assert math.isclose(first["quality"]["reproj_px"], q[worst[0]].reproj_px, rel_tol=1e-6)
    by_id = client.get("/api/fits", params={"sort": "id", "limit": 500}).json()["items"]
    assert [it["id"] for it in by_id] == sorted(q)
    by_file = client.get("/api/fits", params={"sort": "file"}).json()["items"]
    assert [it["id"] for it in by_file] == [f.exemplar_id for f in fits]


def test_queue_filters(client, review_files):
    _, _, _, fits = review_files
    flagged = {f.exemplar_id for f in fits if "implausible_pose" in f.quality.flags}
    assert flagged, "the sample should have a flagged fit"

    def ids(**params):
        return {it["id"] for it in client.get("/api/fits", params={"limit": 500, **params})
                .json()["items"]}

    assert ids(flag="implausible_pose") == flagged
    assert ids(flag="any") == {f.exemplar_id for f in fits if f.quality.flags}
    assert ids(flag="none") == {f.exemplar_id for f in fits if not f.quality.flags}
    assert len(ids(dataset="coco")) == 12
    a, r, f = (fit.exemplar_id for fit in fits[:3])
    assert post(client, a, "accept").status_code == 200
    assert post(client, r, "reject").status_code == 200
    assert post(client, f, "flag").status_code == 200
    assert ids(status="accepted") == {a}
    assert ids(status="rejected") == {r}
    assert ids(status="flagged") == {f}
    assert len(ids(status="unreviewed")) == 9
    assert ids(status="accepted", flag="implausible_pose") == {a} & flagged
    page = client.get("/api/fits", params={"status": "unreviewed"}).json()
    assert page["progress"]["reviewed"] == 3 and page["progress"]["accepted"] == 1


@pytest.mark.parametrize("params", [
    {"sort": "best"}, {"status": "done"}, {"dataset": "mpii"}, {"flag": "sparkly"},
    {"offset": -1}, {"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"sort": "x" * 40},
])
def test_queue_rejects_bad_parameters(client, params):
    resp = client.get("/api/fits", params=params)
    assert resp.status_code in (400, 422), resp.text
    assert "error" in resp.json()


def test_fit_detail_neighbours_and_bad_ids(client, review_files):
    _, _, exemplars, fits = review_files
    order = [it["id"] for it in client.get("/api/fits", params={"limit": 500}).json()["items"]]
    mid = order[4]
    f = client.get("/api/fit", params={"id": mid}).json()
    assert (f["prev"], f["next"], f["position"], f["matching"]) == (order[3], order[5], 4, 12)
    ex = next(e for e in exemplars if e.id == mid)
    assert f["exemplar"]["annotated_keypoints"] == int((ex.keypoints[:, 2] > 0).sum())
    assert f["image_url"] == "/images/" + Path(ex.image_path).name
    assert client.get(f["image_url"]).content == Path(ex.image_path).read_bytes()
    # Accepting under the 'unreviewed' filter: the fit leaves the queue, neighbours stay.
    post(client, mid, "accept")
    g = client.get("/api/fit", params={"id": mid, "status": "unreviewed"}).json()
    assert (g["prev"], g["next"], g["in_queue"]) == (order[3], order[5], False)
    assert g["status"] == "accepted" and g["history"][0]["decision"] == "accept"
    first = client.get("/api/fit", params={"id": order[0]}).json()
    last = client.get("/api/fit", params={"id": order[-1]}).json()
    assert first["prev"] is None and last["next"] is None
    for bad in ("nope", "coco/1", "../coco/198196", "coco%2F198196"):
        resp = client.get("/api/fit", params={"id": bad})
        assert resp.status_code == 404 and "no fit with id" in resp.json()["error"]
    assert client.get("/api/fit").status_code == 422
    assert client.get("/api/fit", params={"id": ""}).status_code == 422
    assert client.get("/api/fit", params={"id": "x" * 513}).status_code == 422
    assert client.get("/api/overlay", params={"id": "nope"}).status_code == 404
    assert client.get("/api/history", params={"id": "nope"}).status_code == 404


# -- overlays ------------------------------------------------------------------------------

def test_overlay_png_is_drawn_where_the_fit_projects_and_cached(client, review_files):
    from PIL import Image

    from eft.render import display_crop

    _, _, exemplars, fits = review_files
    fit = max(fits, key=lambda f: f.scale)
    ex = next(e for e in exemplars if e.id == fit.exemplar_id)
    state = client.app.state.review
    t0 = time.perf_counter()
    resp = client.get("/api/overlay", params={"id": fit.exemplar_id})
    first_s = time.perf_counter() - t0
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    panel = np.asarray(Image.open(__import__("io").BytesIO(resp.content)).convert("RGB"))
    assert panel.shape == (SIZE, 3 * SIZE + 8, 3)
    # Independent placement check: the fit's own vertices (from fitting, not from the
    # annotation file) projected with its weak-perspective camera into the crop.
    s, tx, ty = fit.cam_weak
    uv = (s * fit.vertices[:, :2] + [tx, ty] + 1.0) * SIZE / 2.0
    inside = np.zeros((SIZE, SIZE), bool)
    px = np.clip(np.round(uv).astype(int), 0, SIZE - 1)
    inside[px[:, 1], px[:, 0]] = True
    plain = display_crop(np.asarray(Image.open(ex.image_path).convert("RGB")), ex.center,
                       ex.scale, SIZE).astype(float)
    diff = np.abs(panel[:, :SIZE].astype(float) - plain).sum(-1)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    far = np.ones((SIZE, SIZE), bool)
    for y, x in np.argwhere(inside)[::7]:
        far &= (yy - y) ** 2 + (xx - x) ** 2 > 12 ** 2
    far[:24, :] = False  # the tile's title
    assert diff[inside].mean() > 40, "no mesh drawn where the fit projects"
    assert diff[far].mean() < 4, "overlay drawn where the fit does not project"
    side = panel[:, 2 * SIZE + 8:]
    assert (side.sum(-1) < 700).mean() > 0.02, "side view is empty"
    # Cached: a file keyed by (file hash, fit id, ...); served again without rendering.
    renders = state.overlays.renders
    cached = state.overlays.path(state.catalog.find(fit.exemplar_id))
    assert cached.is_file() and cached.read_bytes() == resp.content
    t0 = time.perf_counter()
    again = client.get("/api/overlay", params={"id": fit.exemplar_id})
    second_s = time.perf_counter() - t0
    assert again.content == resp.content and state.overlays.renders == renders
    print(f"overlay: first {first_s * 1000:.0f} ms, cached {second_s * 1000:.1f} ms")


def test_overlay_without_image_under_root(review_files, tmp_path):
    path, _, _, fits = review_files
    empty = tmp_path / "empty_root"
    empty.mkdir()
    app = create_app(ReviewConfig(annotations=path, images=empty, db=tmp_path / "r.sqlite",
                                  overlay_size=SIZE, allowed_hosts=("testserver",)))
    c = TestClient(app)
    f = c.get("/api/fit", params={"id": fits[0].exemplar_id}).json()
    assert f["image_url"] is None  # the absolute path in the file lies outside this root
    assert c.get("/api/overlay", params={"id": fits[0].exemplar_id}).status_code == 200


# -- decisions, history, undo --------------------------------------------------------------

def test_decisions_history_and_latest_wins(client, review_files, tmp_path):
    _, _, _, fits = review_files
    fid = fits[0].exemplar_id
    assert post(client, fid, "accept", "alice").json()["status"] == "accepted"
    assert post(client, fid, "note", "alice", note="left wrist off").json()["status"] == (
        "accepted")
    assert post(client, fid, "reject", "bob").json()["status"] == "rejected"
    rows = client.get("/api/history", params={"id": fid}).json()["items"]
    assert [(r["annotator"], r["decision"], r["note"]) for r in rows] == [
        ("alice", "accept", ""), ("alice", "note", "left wrist off"), ("bob", "reject", "")]
    assert all(r["created"].endswith("+00:00") for r in rows)
    assert latest_decisions(tmp_path / "review.sqlite") == {fid: "reject"}
    # Paginated history over all fits.
    for k, fit in enumerate(fits[1:6]):
        post(client, fit.exemplar_id, "flag" if k % 2 else "accept")
    page = client.get("/api/history", params={"offset": 2, "limit": 3}).json()
    assert page["total"] == 8 and [r["id"] for r in page["items"]] == [3, 4, 5]
    assert client.get("/api/history", params={"limit": 501}).status_code == 422


@pytest.mark.parametrize("payload, status", [
    ({"fit_id": "coco/198196", "decision": "approve"}, 422),
    ({"fit_id": "coco/198196", "decision": "ACCEPT"}, 422),
    ({"fit_id": "coco/198196", "decision": 1}, 422),
    ({"fit_id": "coco/198196", "decision": "undo"}, 422),
    ({"fit_id": "coco/198196"}, 422),
    ({"fit_id": 198196, "decision": "accept"}, 422),
    ({"fit_id": "coco/198196", "decision": "accept", "extra": 1}, 422),
    ({"fit_id": "coco/198196", "decision": "accept", "note": "x" * 2001}, 422),
    ({"fit_id": "coco/198196", "decision": "accept", "note": "a\x00b"}, 400),
    ({"fit_id": "coco/198196", "decision": "note", "note": "  "}, 400),
    ({"fit_id": "coco/198196", "decision": "accept", "annotator": "<script>"}, 400),
    ({"fit_id": "coco/198196", "decision": "accept", "annotator": "x" * 65}, 422),
    ({"fit_id": "no/such/fit", "decision": "accept"}, 404),
    ({"fit_id": "", "decision": "accept"}, 422),
])
def test_bad_decisions_are_refused_and_not_stored(client, tmp_path, payload, status):
    resp = client.post("/api/decisions", json=payload)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]
    assert ReviewDB(tmp_path / "review.sqlite").count() == 0


def test_writes_need_json_and_same_origin(client, tmp_path):
    body = '{"fit_id": "coco/198196", "decision": "accept"}'
    form = client.post("/api/decisions", content=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    plain = client.post("/api/decisions", content=body, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    cross = client.post("/api/decisions", content=body, headers={
        "Content-Type": "application/json", "Origin": "http://evil.example"})
    assert cross.status_code == 403
    broken = client.post("/api/decisions", content="{not json",
                         headers={"Content-Type": "application/json"})
    assert broken.status_code == 422
    assert broken.json()["error"] == "the request body is not valid JSON"
    from eft.review.middleware import MAX_BODY_BYTES

    huge = client.post("/api/decisions", content=b"x" * (MAX_BODY_BYTES + 1),
                       headers={"Content-Type": "application/json"})
    assert huge.status_code == 413

    def chunks():
        yield b'{"fit_id": "coco/198196", "decision": "accept"}'
    chunked = client.post("/api/decisions", content=chunks(),
                          headers={"Content-Type": "application/json"})
    assert chunked.status_code == 411
    for method in ("DELETE", "PATCH", "PUT"):  # no such route: 405, whatever the body
        assert client.request(method, "/api/undo").status_code == 405
    head, get = client.head("/api/progress"), client.get("/api/progress")
    assert head.status_code == 200 and head.headers["content-type"] == get.headers["content-type"]
    assert client.head("/api/undo").status_code == 405  # a write has no HEAD
    assert ReviewDB(tmp_path / "review.sqlite").count() == 0
    same = client.post("/api/decisions", content=body, headers={
        "Content-Type": "application/json", "Origin": "http://testserver"})
    assert same.status_code == 200


def test_undo_walks_back_own_actions(client, review_files, tmp_path):
    _, _, _, fits = review_files
    a, b = fits[0].exemplar_id, fits[1].exemplar_id
    post(client, a, "accept", "alice")
    post(client, b, "reject", "alice")
    post(client, a, "flag", "bob")
    post(client, a, "reject", "alice")
    st = lambda fid: client.get("/api/fit", params={"id": fid}).json()["status"]  # noqa: E731
    assert (st(a), st(b)) == ("rejected", "rejected")
    undo = lambda **kw: client.post("/api/undo", json=kw).json()  # noqa: E731
    r = undo(annotator="alice")
    assert (r["fit_id"], r["status"], r["row"]["undoes"]) == (a, "flagged", 4)  # bob's flag
    r = undo(annotator="alice")
    assert (r["fit_id"], r["status"]) == (b, "unreviewed")
    r = undo(annotator="alice", fit_id=a)
    assert (r["fit_id"], r["status"], r["row"]["undoes"]) == (a, "flagged", 1)
    assert undo(annotator="alice") == {"row": None, "fit_id": None, "status": None}
    r = undo(annotator="bob")
    assert (r["fit_id"], r["status"]) == (a, "unreviewed")
    assert undo() == {"row": None, "fit_id": None, "status": None}  # default annotator 'ann'
    hist = client.get("/api/history", params={"id": a}).json()["items"]
    assert [h["withdrawn"] for h in hist if h["decision"] != "undo"] == [True, True, True]
    assert latest_decisions(tmp_path / "review.sqlite") == {}
    assert ReviewDB(tmp_path / "review.sqlite").count() == 8  # full history kept
    assert client.post("/api/undo", json={"fit_id": "nope"}).status_code == 404
    assert client.post("/api/undo", json={"annotator": 5}).status_code == 422


def test_latest_decisions_drive_annotation_filter(client, review_files, tmp_path):
    from eft.annotations import read_annotations

    path, _, _, fits = review_files
    a, r, f = (fit.exemplar_id for fit in fits[:3])
    post(client, a, "reject", "x")
    post(client, a, "accept", "y")
    post(client, r, "accept", "x")
    post(client, r, "reject", "y")
    post(client, f, "flag", "x")
    decisions = latest_decisions(tmp_path / "review.sqlite")
    assert decisions == {a: "accept", r: "reject", f: "flag"}
    assert accepted_ids(tmp_path / "review.sqlite") == {a}
    kept = read_annotations(path).filter(decisions=decisions)
    assert a in kept.ids and r not in kept.ids and f in kept.ids and len(kept) == 11


# -- the database alone --------------------------------------------------------------------

def _writer(db_path: str, who: str, n: int) -> None:
    db = ReviewDB(db_path)
    for k in range(n):
        db.record(f"fit/{k % 7}", ("accept", "reject", "flag")[k % 3], who, f"{who}-{k}")


def test_db_is_wal_and_processes_do_not_lose_writes(tmp_path):
    path = tmp_path / "multi.sqlite"
    ReviewDB(path)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), f"p{i}", 40)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = ReviewDB(path).history()
    assert len(rows) == 160
    assert {r.note for r in rows} == {f"p{i}-{k}" for i in range(4) for k in range(40)}
    latest = latest_decisions(path)
    for fid, decision in latest.items():
        last = max((r for r in rows if r.fit_id == fid), key=lambda r: r.id)
        assert decision == last.decision


def test_db_bad_files(tmp_path):
    with pytest.raises(ReviewError, match="no such review database"):
        latest_decisions(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ReviewError, match="not a usable review database"):
        ReviewDB(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    with pytest.raises(ReviewError, match="not a review database"):
        ReviewDB(other)
    with pytest.raises(ReviewError, match="is a directory"):
        ReviewDB(tmp_path)
    db = ReviewDB(tmp_path / "ok.sqlite")
    with pytest.raises(ReviewError, match="bad decision"):
        db.record("a", "maybe", "me")
    with pytest.raises(ReviewError, match="bad fit id"):
        db.record("a\x07", "accept", "me")


# -- images and path traversal -------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/images/%2e%2e/coco_sample/000000040083.jpg",      # ..  URL-encoded
    "/images/%2E%2E%2Fcoco_sample%2F000000040083.jpg",   # ../ encoded, upper case
    "/images/%252e%252e/coco_sample/000000040083.jpg",  # double-encoded ..
    "/images/%252e%252e%252fLICENSES.md",               # double-encoded ../
    "/images/..%5c..%5cLICENSES.md",                     # backslashes
    "/images/%2Fetc%2Fpasswd",                           # absolute, encoded
    "/images//etc/passwd",                               # absolute
    "/images/C:%5cWindows%5cwin.ini",                    # drive letter
    "/images/000000040083.jpg%00.png",                   # NUL
    "/images/test_coco.json",                            # not an image
    "/images/missing.jpg",                               # not there
])
def test_images_refuse_traversal_and_non_images(client, target):
    resp = client.get(target)
    assert resp.status_code in (400, 404), (target, resp.status_code)
    assert resp.headers["content-type"].startswith("application/json")


def test_images_refuse_symlinks_out_of_root(review_files, tmp_path):
    path, root, _, _ = review_files
    img_root = tmp_path / "root"
    img_root.mkdir()
    (img_root / "ok.jpg").write_bytes((root / "000000040083.jpg").read_bytes())
    (img_root / "sneaky.jpg").symlink_to(root / "000000785.jpg")
    c = TestClient(create_app(ReviewConfig(annotations=path, images=img_root,
                                           db=tmp_path / "r.sqlite",
                                           allowed_hosts=("testserver",))))
    assert c.get("/images/ok.jpg").status_code == 200
    assert c.get("/images/sneaky.jpg").status_code == 404


# -- a live server: raw paths, 8 concurrent annotators -------------------------------------

def test_live_server_traversal_and_concurrent_annotators(review_files, tmp_path):
    import httpx

    _, _, _, fits = review_files
    app = make_app(review_files, tmp_path, allowed_hosts=None)
    ids = [f.exemplar_id for f in fits]
    n_threads, per_thread = 8, 25
    with live_server(app) as (url, port):
        # Sent byte for byte: '..' and its encodings never reach outside the root.
        for target in ("/images/../LICENSES.md", "/images/../../../../etc/passwd",
                       "/images/..%2f..%2fetc%2fpasswd", "/images/%2e%2e/LICENSES.md",
                       "/images/%252e%252e/LICENSES.md", "/images/./../LICENSES.md"):
            assert raw_get(port, target) in (400, 404), target
        assert raw_get(port, "/images/000000040083.jpg") == 200
        barrier = threading.Barrier(n_threads)
        errors: list[str] = []

        def annotate(t: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                barrier.wait()
                for k in range(per_thread):
                    r = c.post("/api/decisions", json={
                        "fit_id": ids[(t + k) % len(ids)],
                        "decision": ("accept", "reject", "flag")[(t * k) % 3],
                        "annotator": f"ann{t}", "note": f"{t}:{k}"})
                    if r.status_code != 200:
                        errors.append(r.text)

        threads = [threading.Thread(target=annotate, args=(t,)) for t in range(n_threads)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        elapsed = time.perf_counter() - t0
    assert not errors, errors[:3]
    rows = ReviewDB(tmp_path / "review.sqlite").history()
    assert len(rows) == n_threads * per_thread
    assert {(r.annotator, r.note) for r in rows} == {
        (f"ann{t}", f"{t}:{k}") for t in range(n_threads) for k in range(per_thread)}
    assert len({r.id for r in rows}) == len(rows)
    print(f"{len(rows)} concurrent decisions from {n_threads} threads in {elapsed:.2f} s")


# -- host and token ------------------------------------------------------------------------

def test_non_loopback_host_needs_a_token(review_files, tmp_path):
    with pytest.raises(ReviewError, match="needs --token"):
        make_app(review_files, tmp_path, host="0.0.0.0")
    with pytest.raises(ReviewError, match="needs --token"):
        make_app(review_files, tmp_path, host="192.168.1.20")
    with pytest.raises(ReviewError, match="at least 16"):
        make_app(review_files, tmp_path, host="0.0.0.0", token="short")
    make_app(review_files, tmp_path, host="::1")  # loopback: no token needed

    token = "s3cret-token-for-tests-0123"
    c = TestClient(make_app(review_files, tmp_path, host="0.0.0.0", token=token,
                            allowed_hosts=None))
    for path in ("/", "/api/info", "/api/fits", "/static/app.js", "/images/000000040083.jpg"):
        assert c.get(path).status_code == 401, path
    assert c.get("/api/info", headers={"Authorization": "Bearer wrong-token-0000000"}
                 ).status_code == 401
    assert c.post("/api/decisions", json={"fit_id": "coco/198196", "decision": "accept"}
                  ).status_code == 401
    assert c.get("/api/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert c.get("/", params={"token": "wrong-token-0000000"}).status_code == 401
    # The printed URL carries the token once; the page then runs on an HttpOnly cookie.
    r = c.get("/", params={"token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "httponly" in r.headers["set-cookie"].lower()
    assert c.get("/api/info").status_code == 200
    assert c.post("/api/decisions", json={"fit_id": "coco/198196", "decision": "accept"}
                  ).status_code == 200


def test_loopback_server_refuses_foreign_host_header(review_files, tmp_path):
    c = TestClient(make_app(review_files, tmp_path, allowed_hosts=None),
                   base_url="http://127.0.0.1:8765")
    assert c.get("/api/info").status_code == 200
    assert c.get("/api/info", headers={"Host": "evil.example:8765"}).status_code == 400


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js"' in page.text and "<style" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "innerHTML" not in js.text  # values are written with textContent only
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/static/index.html").status_code == 404
    assert client.get("/static/..%2fdb.py").status_code == 404
    assert client.get("/nope").status_code == 404


def test_cli_refuses_open_host_without_token(review_files, capsys):
    from eft.cli import main

    path, root, _, _ = review_files
    code = main(["review", str(path), "--images", str(root), "--host", "0.0.0.0",
                 "--port", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs --token" in err[0]
    assert main(["review", str(path), "--images", str(root / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


# -- a 10k-fit file ------------------------------------------------------------------------

def test_queue_pages_stay_fast_on_10k_fits(review_files, tmp_path):
    from eft.annotations import read_columns

    path, root, _, _ = review_files
    header, cols = read_columns(path)
    reps = -(-10_000 // len(cols))
    big = type(cols).concat([cols] * reps).take(slice(0, 10_000))
    big.fit_id = np.array([f"big/{k:05d}" for k in range(10_000)], dtype=object)
    cat = Catalog.build(big, header.provenance, header.missing, path=path, file_hash="big")
    app = create_app(ReviewConfig(annotations=path, images=root, db=tmp_path / "big.sqlite",
                                  allowed_hosts=("testserver",)), catalog=cat)
    with sqlite3.connect(tmp_path / "big.sqlite") as con:  # 2,000 decisions, one commit
        con.executemany(
            "INSERT INTO decisions (fit_id, annotator, created, decision, fit_digest) "
            "VALUES (?,?,?,?,?)",
            [(f"big/{k:05d}", "ann", "2026-01-01T00:00:00+00:00",
              ("accept", "reject", "flag")[k % 3], cat.digests[f"big/{k:05d}"])
             for k in range(0, 10_000, 5)])
    c = TestClient(app)
    c.get("/api/fits")  # warm up
    times = {}
    for name, params in {"worst first": {"sort": "quality"},
                         "unreviewed, page 100": {"status": "unreviewed", "offset": 5000},
                         "flagged by id": {"status": "flagged", "sort": "id"}}.items():
        t0 = time.perf_counter()
        resp = c.get("/api/fits", params={**params, "limit": 50})
        times[name] = time.perf_counter() - t0
        assert resp.status_code == 200 and len(resp.json()["items"]) == 50
    t0 = time.perf_counter()
    f = c.get("/api/fit", params={"id": "big/05001", "status": "unreviewed",
                                  "sort": "file"}).json()
    times["fit view"] = time.perf_counter() - t0
    assert f["next"] == "big/05002" and f["prev"] == "big/04999"
    assert c.get("/api/fits", params={"status": "unreviewed"}).json()["total"] == 8000
    print("10k fits, ms per request: " + ", ".join(
        f"{k} {v * 1000:.0f}" for k, v in times.items()))
    assert max(times.values()) < 1.0, times


def test_export_honours_review_db(client, review_files, tmp_path):
    """``eft export --review-db DB --accepted-only`` keeps what annotators accepted and
    drops what they rejected, whatever the automatic verdict; undone decisions do not
    count."""
    from eft.annotations import read_annotations
    from eft.cli import main

    path, _, _, fits = review_files
    auto_ok = [f.exemplar_id for f in fits if f.accepted]
    a, r, u = auto_ok[:3]
    post(client, a, "accept")
    post(client, r, "reject")
    post(client, u, "reject")
    assert client.post("/api/undo", json={"annotator": "ann"}).status_code == 200
    db = tmp_path / "review.sqlite"
    out = tmp_path / "kept.json"
    assert main(["export", str(path), "-o", str(out), "--accepted-only",
                 "--review-db", str(db)]) == 0
    kept = set(read_annotations(out).ids)
    assert a in kept and u in kept and r not in kept
    assert kept == set(auto_ok) - {r}
    assert main(["export", str(path), "-o", str(tmp_path / "x.json"),
                 "--review-db", str(path)]) == 2  # not a database: one-line error


def test_truncated_and_turned_images_and_a_bad_model(review_files, tmp_path):
    """A truncated JPEG is flagged unreadable (no blind decision on a grey panel); an
    image with an EXIF orientation is drawn turned, as the fitting read it; a bad
    --model is an error at start-up, not a 500 later."""
    import shutil

    from PIL import Image

    from eft.data.images import load_image
    from eft.errors import EftError
    from eft.review.state import build_state

    path, root, exemplars, _ = review_files
    images = tmp_path / "images"
    shutil.copytree(root, images)
    first = Path(exemplars[0].image_path).name
    raw = (images / first).read_bytes()
    (images / first).write_bytes(raw[: len(raw) // 3])
    second = next(Path(e.image_path).name for e in exemplars
                  if Path(e.image_path).name != first)
    with Image.open(images / second) as im:
        exif = im.getexif()
        exif[0x0112] = 6  # turned 90 degrees
        im.save(images / second, exif=exif.tobytes())
    app = create_app(ReviewConfig(annotations=path, images=images, db=tmp_path / "r.sqlite",
                                  annotator="ann", overlay_size=SIZE,
                                  allowed_hosts=("testserver",)))
    client = TestClient(app)
    broken = [e.id for e in exemplars if Path(e.image_path).name == first]
    for fit_id in broken:
        assert client.get("/api/fit", params={"id": fit_id}).json()["image_problem"] == \
            "unreadable"
    state = build_state(ReviewConfig(annotations=path, images=images,
                                     db=tmp_path / "r2.sqlite", annotator="ann"))
    i = next(k for k, fid in enumerate(state.catalog.ids)
             if Path(exemplars[[e.id for e in exemplars].index(fid)].image_path).name
             == second)
    turned = state.overlays.image(i)
    assert turned is not None and turned.shape == load_image(images / second).shape
    assert turned.shape[0] > turned.shape[1]  # the landscape photo stands upright now
    with pytest.raises(EftError, match="nope.pkl"):
        build_state(ReviewConfig(annotations=path, images=images, db=tmp_path / "r3.sqlite",
                                 annotator="ann", model=str(tmp_path / "nope.pkl")))


def test_a_file_without_fits_opens(tmp_path):
    from eft.annotations import AnnotationSet, Provenance, write_annotations

    empty = write_annotations(AnnotationSet.from_fits([], [], Provenance.create()),
                              tmp_path / "empty.json")
    client = TestClient(create_app(ReviewConfig(
        annotations=empty, images=tmp_path, db=tmp_path / "r.sqlite", annotator="ann",
        allowed_hosts=("testserver",))))
    assert client.get("/api/info").json()["count"] == 0
    assert client.get("/api/fits").status_code == 200
