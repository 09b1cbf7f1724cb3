"""Review decisions are bound to the fits they judged: the annotation file's sha256, a
digest of the fit's values and its id are stored with each decision, and export / the
trainer apply a decision only to the exact fit judged.  Checked against files that
change under the decisions (re-fitted values, another file reusing the ids), a database
of the old schema (migrated), and ``--decisions-any-file``."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import warnings

import numpy as np
import pytest

from eft.annotations import Provenance, read_columns
from eft.annotations.api import write_columns
from eft.annotations.decisions import (
    BoundDecisions,
    ReviewDecision,
    fit_digest,
    fit_digests,
    load_bound_decisions,
)
from eft.annotations.synthetic import random_columns
from eft.cli import main
from tests.helpers import require_module

PROV = Provenance.create(dataset="synthetic", split="test")
N = 12


def _columns(seed: int = 5):
    cols = random_columns(N, seed=seed)
    q = dict(cols.quality)
    q["accepted"] = np.ones(N, bool)  # every fit accepted automatically ...
    q["accepted"][[1, 2]] = False  # ... but two
    q["flags"] = np.empty(N, dtype=object)
    q["flags"][:] = [()] * N
    return dataclasses.replace(cols, quality=q)


def _with_ids(cols, ids):
    arr = np.empty(len(ids), dtype=object)
    arr[:] = ids
    return dataclasses.replace(cols, fit_id=arr)


def _changed(cols, rows):
    """The same fits with the betas of ``rows`` changed (a re-fit)."""
    betas = cols.betas.copy()
    betas[rows, 0] += 0.25
    return dataclasses.replace(cols, betas=betas)


def _export(src, dst, db, *extra, capsys):
    rc = main(["export", str(src), "-o", str(dst), "--accepted-only", "--review-db", str(db),
               *extra])
    out = capsys.readouterr().out
    assert rc == 0, out
    return set(read_columns(dst)[1].fit_id.tolist()), out


# -- digests -------------------------------------------------------------------------------

def test_fit_digest_depends_on_every_value_and_survives_formats(tmp_path):
    cols = _columns()
    d = fit_digests(cols.rotmat, cols.betas, cols.cam_weak)
    assert len(set(d)) == N and all(len(x) == 64 for x in d)
    # one float32 ulp in any of pose, betas or camera changes the digest
    for name in ("rotmat", "betas", "cam_weak"):
        arr = getattr(cols, name).copy()
        flat = arr.reshape(N, -1)
        flat[3, -1] = np.nextafter(flat[3, -1], np.float32(np.inf))
        moved = fit_digests(**{"rotmat": cols.rotmat, "betas": cols.betas,
                               "cam_weak": cols.cam_weak, name: arr})
        assert moved[3] != d[3] and moved[:3] == d[:3] and moved[4:] == d[4:]
    # -0.0 and 0.0 are the same value
    betas = cols.betas.copy()
    betas[0, 0] = 0.0
    neg = betas.copy()
    neg[0, 0] = -0.0
    assert fit_digests(cols.rotmat, betas, cols.cam_weak)[0] == fit_digests(
        cols.rotmat, neg, cols.cam_weak)[0]
    # the values read back from eft-json and h5 hash like the originals
    for suffix in (".json", ".h5"):
        back = read_columns(write_columns(cols, PROV, tmp_path / f"f{suffix}"))[1]
        assert fit_digests(back.rotmat, back.betas, back.cam_weak) == d, suffix
    fit = cols.to_annotations()[4].fit
    assert fit_digest(fit) == d[4]


def test_bound_decisions_counts():
    decisions = [ReviewDecision("a", "accept", "da", None, 1),
                 ReviewDecision("b", "reject", "db-old", None, 2),  # b was re-fitted
                 ReviewDecision("c", "reject", "dc", None, 3),  # c: another file's fit
                 ReviewDecision("d", "accept", None, None, 4)]  # legacy row
    bound = BoundDecisions(decisions, source="x")
    got = bound.resolve(["a", "b", "c", "d", "e"], ["da", "db-new", "dc-other", "dd", "de"])
    assert got == {"a": "accept"}
    assert bound.counts() == {"matched": 1, "ignored": 2, "unbound": 1, "unreviewed": 4,
                              "fits": 5}
    line = bound.report()
    assert "\n" not in line and "1 matched" in line and "2 ignored (other or changed" in line
    assert "4 of 5 fits unreviewed" in line
    loose = BoundDecisions(decisions, any_file=True)
    assert loose.resolve(["a", "b", "c", "d", "e"], ["x"] * 5) == {
        "a": "accept", "b": "reject", "c": "reject", "d": "accept"}
    assert loose.counts()["matched"] == 4 and loose.counts()["unreviewed"] == 1


# -- the review app writes bound decisions; export applies them ------------------------------

def _require_review_extra() -> None:
    for name in ("fastapi", "httpx"):
        require_module(name, "pip install -e '.[review]'")


@pytest.fixture
def reviewed(tmp_path):
    """File A reviewed in the app: fit 0 rejected, fits 1 and 2 (auto-rejected) accepted,
    fit 3 accepted, then fit 3 undone.  ``(file A, columns A, db, client)``."""
    _require_review_extra()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from eft.review.app import ReviewConfig, create_app

    cols = _columns()
    (tmp_path / "a").mkdir()
    path = write_columns(cols, PROV, tmp_path / "a" / "fits.json")
    (tmp_path / "images").mkdir()
    db = tmp_path / "review.sqlite"
    app = create_app(ReviewConfig(annotations=path, images=tmp_path / "images", db=db,
                                  annotator="ann", overlay_size=64,
                                  allowed_hosts=("testserver",)))
    client = TestClient(app)
    ids = cols.fit_id.tolist()
    for fid, dec in ((ids[0], "reject"), (ids[1], "accept"), (ids[2], "accept"),
                     (ids[3], "accept")):
        r = client.post("/api/decisions", json={"fit_id": fid, "decision": dec})
        assert r.status_code == 200, r.text
    assert client.post("/api/undo", json={}).json()["fit_id"] == ids[3]
    return path, cols, db, client


def test_decisions_store_file_and_fit(reviewed):
    from eft._files import file_sha256
    from eft.review import ReviewDB

    path, cols, db, _ = reviewed
    rows = ReviewDB(db).history()
    digests = fit_digests(cols.rotmat, cols.betas, cols.cam_weak)
    assert [r.fit_digest for r in rows] == [digests[0], digests[1], digests[2], digests[3],
                                            digests[3]]
    assert {r.file_sha256 for r in rows} == {file_sha256(path)}


def test_export_applies_decisions_to_the_exact_fits(reviewed, tmp_path, capsys):
    path, cols, db, _ = reviewed
    ids = cols.fit_id.tolist()
    everyone = set(ids)
    # the file judged: 0 rejected, 1 and 2 revived, the undone 3 stays automatic
    kept, out = _export(path, tmp_path / "a.json", db, capsys=capsys)
    assert kept == everyone - {ids[0]}
    assert "3 matched to the exact fits judged, 0 ignored" in out
    assert f"{N - 3} of {N} fits unreviewed" in out

    # a re-fit changed fits 0 and 1: their decisions no longer apply
    b = write_columns(_changed(cols, [0, 1]), PROV, tmp_path / "b.h5")
    kept, out = _export(b, tmp_path / "b.json", db, capsys=capsys)
    assert kept == everyone - {ids[1]}  # 0 back to automatic (accepted), 1 auto-rejected
    assert "1 matched to the exact fits judged, 2 ignored (other or changed fits)" in out
    assert f"{N - 1} of {N} fits unreviewed" in out

    # another file whose ids coincide (other people): nothing applies
    other = _with_ids(_columns(seed=9), ids)
    c = write_columns(other, PROV, tmp_path / "c.json")
    kept, out = _export(c, tmp_path / "c_out.json", db, capsys=capsys)
    assert kept == everyone - {ids[1], ids[2]}
    assert "0 matched" in out and "3 ignored" in out and f"{N} of {N} fits unreviewed" in out

    # --decisions-any-file: by id alone, as before
    kept, out = _export(c, tmp_path / "c_any.json", db, "--decisions-any-file", capsys=capsys)
    assert kept == everyone - {ids[0]}
    assert "3 matched by fit id alone (--decisions-any-file)" in out

    # the same fits in another format still match (same values, same ids)
    h5 = write_columns(cols, PROV, tmp_path / "same.h5")
    kept, out = _export(h5, tmp_path / "same_out.json", db, capsys=capsys)
    assert kept == everyone - {ids[0]} and "3 matched" in out


def test_app_status_follows_the_fit(reviewed, tmp_path):
    """A re-fitted file opened on the same database starts unreviewed where it changed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from eft.review.app import ReviewConfig, create_app

    path, cols, db, client = reviewed
    ids = cols.fit_id.tolist()
    assert client.get("/api/progress").json()["reviewed"] == 3
    changed = _changed(cols, [0])
    write_columns(changed, PROV, path)  # eft fit --force rewrote the file
    app = create_app(ReviewConfig(annotations=path, images=tmp_path / "images", db=db,
                                  annotator="ann", overlay_size=64,
                                  allowed_hosts=("testserver",)))
    c2 = TestClient(app)
    assert c2.get("/api/progress").json()["reviewed"] == 2
    assert c2.get("/api/info").json()["stale_decisions"] == 1  # the decision on old fit 0
    st = {it["id"]: it["status"] for it in c2.get("/api/fits?limit=50").json()["items"]}
    assert st[ids[0]] == "unreviewed" and st[ids[1]] == st[ids[2]] == "accepted"
    fit = c2.get("/api/fit", params={"id": ids[0]}).json()
    assert fit["status"] == "unreviewed"
    assert [h["other_fit"] for h in fit["history"]] == [True]
    # undo in the new file does not withdraw decisions made in the old one
    assert c2.post("/api/undo", json={}).json()["row"] is None


# -- migration -----------------------------------------------------------------------------

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, fit_id TEXT NOT NULL, annotator TEXT NOT NULL,
    created TEXT NOT NULL, decision TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    undoes INTEGER UNIQUE REFERENCES decisions(id));
INSERT INTO meta VALUES ('application', 'eft-review'), ('schema_version', '1');
"""


def _v1_db(path, rows):
    con = sqlite3.connect(path)
    con.executescript(_V1)
    con.executemany("INSERT INTO decisions (fit_id, annotator, created, decision) "
                    "VALUES (?, 'old', '2026-01-01T00:00:00', ?)", rows)
    con.commit()
    con.close()


def test_old_database_is_migrated_and_its_rows_stay_unbound(tmp_path, capsys):
    from eft.review import ReviewDB, latest_decisions

    cols = _columns()
    ids = cols.fit_id.tolist()
    path = write_columns(cols, PROV, tmp_path / "fits.json")
    db = tmp_path / "old.sqlite"
    _v1_db(db, [(ids[0], "reject"), (ids[1], "accept")])
    # read-only readers understand schema 1 without changing it
    assert load_bound_decisions(db).decisions[0].fit_digest is None
    assert latest_decisions(db) == {ids[0]: "reject", ids[1]: "accept"}
    kept, out = _export(path, tmp_path / "o.json", db, capsys=capsys)
    assert kept == set(ids) - {ids[1], ids[2]}  # old rows ignored ...
    assert "0 matched" in out and "2 ignored (made before decisions recorded their fit" in out
    kept, out = _export(path, tmp_path / "o2.json", db, "--decisions-any-file",
                        capsys=capsys)
    assert kept == set(ids) - {ids[0], ids[2]}  # ... unless asked for by id
    # opening it for writing migrates it in place, keeping every row
    rdb = ReviewDB(db)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'"
                           ).fetchone()[0] == "2"
    rows = rdb.history()
    assert [(r.fit_id, r.decision, r.fit_digest) for r in rows] == [
        (ids[0], "reject", None), (ids[1], "accept", None)]
    d0 = fit_digests(cols.rotmat, cols.betas, cols.cam_weak)[0]
    rdb.record(ids[0], "accept", "new", file_sha256="0" * 64, fit_digest=d0)
    kept, out = _export(path, tmp_path / "o3.json", db, capsys=capsys)
    assert ids[0] in kept and "1 matched" in out and "2 ignored (made before" in out
    ReviewDB(db)  # reopening a migrated database is a no-op
    assert len(ReviewDB(db).history()) == 3


def test_json_decisions_match_by_id(tmp_path, capsys):
    cols = _columns()
    ids = cols.fit_id.tolist()
    path = write_columns(cols, PROV, tmp_path / "fits.json")
    dec = tmp_path / "decisions.json"
    dec.write_text(json.dumps({ids[0]: "reject", ids[1]: "accept", "elsewhere/1": "reject"}))
    kept, out = _export(path, tmp_path / "o.json", dec, capsys=capsys)
    assert kept == set(ids) - {ids[0], ids[2]}
    assert "2 matched by fit id (this file records no fits), 1 ignored" in out


def test_train_decisions_bound(tmp_path):
    from eft.review import ReviewDB
    from eft.train.config import DatasetSpec
    from eft.train.run import build_dataset

    cols = _columns()
    ids = cols.fit_id.tolist()
    path = write_columns(_changed(cols, [0]), PROV, tmp_path / "fits.json")
    digests = fit_digests(cols.rotmat, cols.betas, cols.cam_weak)
    db = tmp_path / "r.sqlite"
    rdb = ReviewDB(db)
    rdb.record(ids[0], "reject", "a", fit_digest=digests[0])  # judged before the re-fit
    rdb.record(ids[3], "reject", "a", fit_digest=digests[3])
    lines: list[str] = []
    spec = DatasetSpec(path=str(path), decisions=str(db), accepted_only=True)
    data = build_dataset(spec, None, log=lines.append)
    assert set(data.ids) == set(ids) - {ids[1], ids[2], ids[3]}
    assert len(lines) == 1 and "1 matched" in lines[0] and "1 ignored" in lines[0]
    spec = dataclasses.replace(spec, decisions_any_file=True)
    data = build_dataset(spec, None, log=lines.append)
    assert set(data.ids) == set(ids) - {ids[0], ids[1], ids[2], ids[3]}
