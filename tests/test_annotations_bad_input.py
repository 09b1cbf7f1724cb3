"""Annotation files and options a user gets wrong: one person's malformed quality, an
annotation id too large for int64, thresholds that would silently drop every fit, a
file whose suffix disagrees with its content, and the counts ``eft validate`` prints."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from eft.annotations import Provenance, read_annotations
from eft.annotations.api import detect_format, read_columns, write_columns
from eft.annotations.columns import _object_array
from eft.annotations.eft_json import write_eft_json
from eft.annotations.errors import AnnotationError
from eft.annotations.record import MALFORMED_QUALITY
from eft.annotations.synthetic import random_columns
from eft.cli import main

PROV = Provenance.unknown("test")
N = 8


def _with_quality(tmp_path: Path, bad: dict[int, object], name: str = "q.json") -> Path:
    """An EFT JSON file of ``N`` fits where person ``i`` has ``quality`` replaced as
    ``bad[i]`` says (a whole value, or ``{key: value}`` merged into it)."""
    path = write_eft_json(random_columns(N, 0), PROV, tmp_path / name)
    lines = path.read_text().splitlines()
    people = [json.loads(line.rstrip(",")) for line in lines[1:-1]]
    for i, value in bad.items():
        if isinstance(value, dict):
            people[i]["quality"].update(value)
        else:
            people[i]["quality"] = value
    path.write_text(lines[0] + "\n" + ",\n".join(json.dumps(p) for p in people) + "\n"
                    + lines[-1] + "\n")
    return path


# -- 1. one person's malformed quality --------------------------------------------------

@pytest.mark.parametrize("bad", ["bad", {"accepted": "yes"}, {"iterations": 2.5}])
def test_malformed_quality_marks_that_fit_only(tmp_path, caplog, bad):
    good = random_columns(N, 0)
    path = _with_quality(tmp_path, {0: bad})
    with caplog.at_level(logging.WARNING, logger="eft.annotations"):
        header, cols = read_columns(path)
    assert "quality" not in header.missing
    q = cols.quality
    assert not q["accepted"][0] and q["flags"][0] == (MALFORMED_QUALITY,)
    assert all(math.isnan(q[k][0]) for k in ("loss_2d_init", "loss_2d_final", "reproj_px"))
    for i in range(1, N):
        for k in ("loss_2d_final", "reproj_px", "accepted", "flags"):
            assert q[k][i] == good.quality[k][i], (i, k)
    warned = [r.getMessage() for r in caplog.records if r.name == "eft.annotations"]
    assert len(warned) == 1 and repr(str(good.fit_id[0])) in warned[0]
    assert "malformed 'quality'" in warned[0]


def test_malformed_quality_is_warned_once_naming_every_fit(tmp_path, caplog, monkeypatch):
    import eft.annotations.eft_json as eft_json

    monkeypatch.setattr(eft_json, "_READ_ROWS", 3)  # the bad rows fall in two chunks
    good = random_columns(N, 0)
    path = _with_quality(tmp_path, {1: "bad", 6: {"flags": "x"}})
    with caplog.at_level(logging.WARNING, logger="eft.annotations"):
        _, cols = read_columns(path)
    warned = [r.getMessage() for r in caplog.records if r.name == "eft.annotations"]
    assert len(warned) == 1 and "in 2 fit(s)" in warned[0]
    assert repr(str(good.fit_id[1])) in warned[0] and repr(str(good.fit_id[6])) in warned[0]
    expect = good.quality["accepted"].copy()
    expect[[1, 6]] = False
    assert cols.quality["accepted"].tolist() == expect.tolist()


def test_malformed_quality_cli_inspect_export_validate(tmp_path, capsys):
    good = random_columns(N, 0)
    path = _with_quality(tmp_path, {0: "bad"})
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "quality: not stored" not in out
    assert f"rejected by reason (a fit may have several): {MALFORMED_QUALITY} 1" in out

    kept = tmp_path / "kept.npz"
    assert main(["export", str(path), "-o", str(kept), "--accepted-only"]) == 0
    expect = int(good.quality["accepted"][1:].sum())
    assert f"{expect} of {N} fits" in capsys.readouterr().out

    h5 = tmp_path / "all.h5"
    assert main(["export", str(path), "-o", str(h5)]) == 0
    capsys.readouterr()
    header, back = read_columns(h5)
    assert "quality" not in header.missing
    assert back.quality["flags"][0] == (MALFORMED_QUALITY,) and not back.quality["accepted"][0]
    assert back.quality["loss_2d_final"][1] == good.quality["loss_2d_final"][1]

    strict = tmp_path / "strict.json"
    assert main(["export", str(h5), "-o", str(strict), "--strict", "--max-loss", "1"]) == 0
    capsys.readouterr()
    assert str(good.fit_id[0]) not in read_annotations(strict).ids

    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "quality malformed in the source file" in out and "not finite" not in out


def test_rejudging_keeps_a_malformed_quality_rejected(tmp_path):
    """Rules that reject nothing still cannot accept a quality nobody could read."""
    from eft.annotations.filters import Selection
    from eft.fitting.config import QualityRules

    _, cols = read_columns(_with_quality(tmp_path, {0: "bad"}))
    lenient = Selection(accepted_only=True, rules=QualityRules(reject_flags=()))
    kept = lenient.apply(cols)
    assert len(kept) == N - 1 and str(cols.fit_id[0]) not in kept.fit_id.tolist()
    aset = read_annotations(tmp_path / "q.json")
    assert len(lenient.apply_set(aset).annotations) == N - 1
    judged = Selection(rules=QualityRules(reject_flags=())).apply(cols)
    assert MALFORMED_QUALITY in judged.quality["flags"][0] and not judged.quality[
        "accepted"][0]
    # the library's own re-judging keeps it too (eft.fitting.rejudge)
    from eft.fitting.quality import rejudge

    fits = [a.fit for a in aset.annotations[:2]]
    again = rejudge(fits, QualityRules(reject_flags=()))
    assert MALFORMED_QUALITY in again[0].quality.flags and not again[0].quality.accepted
    assert again[1].quality.accepted and MALFORMED_QUALITY not in again[1].quality.flags


def test_missing_quality_everywhere_is_still_missing(tmp_path):
    """A file whose people carry no quality at all (EFT's release) is not 'malformed'."""
    path = write_eft_json(random_columns(3, 0), PROV, tmp_path / "none.json",
                          missing=frozenset({"quality"}))
    header, cols = read_columns(path)
    assert "quality" in header.missing and cols.quality["accepted"].all()


# -- 2. an annotation id too large for int64 -------------------------------------------

@pytest.mark.parametrize("suffix", [".h5", ".json", ".npz", ".humandata.npz"])
def test_huge_annotation_id_is_written(tmp_path, suffix):
    cols = random_columns(3, 0)
    cols.meta = _object_array([{**m, "annotId": 2 ** 70 if i == 0 else 7}
                               for i, m in enumerate(cols.meta)])
    assert cols.annot_ids().tolist() == [-1, 7, 7]
    path = write_columns(cols, PROV, tmp_path / f"big{suffix}")
    back = read_annotations(path)
    assert back.ids == cols.fit_id.tolist()
    assert back.annotations[1].exemplar.meta["annotId"] == 7
    if suffix in (".h5", ".json"):  # they keep exemplar meta: the id is not lost
        assert back.annotations[0].exemplar.meta["annotId"] == 2 ** 70


# -- 4. thresholds and counts that make no sense ---------------------------------------

@pytest.mark.parametrize("argv, flag", [
    (["--max-loss", "nan"], "--max-loss"),
    (["--max-loss", "-0.5"], "--max-loss"),
    (["--max-loss=-1e-3"], "--max-loss"),
    (["--max-loss", "inf"], "--max-loss"),
    (["--max-reproj-px", "NaN"], "--max-reproj-px"),
    (["--max-abs-beta", "-1"], "--max-abs-beta"),
    (["--min-keypoints", "-2"], "--min-keypoints"),
])
def test_export_refuses_nan_or_negative_thresholds(tmp_path, capsys, argv, flag):
    src = write_eft_json(random_columns(2, 0), PROV, tmp_path / "a.json")
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(src), "-o", str(tmp_path / "b.json"), *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and ">= 0" in err
    assert not (tmp_path / "b.json").exists()


def test_export_keeps_accepting_sane_thresholds(tmp_path, capsys):
    src = write_eft_json(random_columns(2, 0), PROV, tmp_path / "a.json")
    assert main(["export", str(src), "-o", str(tmp_path / "b.json"), "--max-loss", "1e9",
                 "--max-abs-beta", "0", "--min-keypoints", "0"]) == 0
    assert "of 2 fits" in capsys.readouterr().out


def test_inspect_refuses_negative_worst(tmp_path, capsys):
    src = write_eft_json(random_columns(2, 0), PROV, tmp_path / "a.json")
    with pytest.raises(SystemExit) as exit_:
        main(["inspect", str(src), "--json", "--worst", "-1"])
    assert exit_.value.code == 2
    assert "argument --worst:" in capsys.readouterr().err


# -- 5. eft validate counts what it prints ---------------------------------------------

def test_validate_counts_warning_lines_not_fits(tmp_path, capsys):
    cols = random_columns(N, 0)
    cols.quality = {k: v.copy() for k, v in cols.quality.items()}
    cols.quality["accepted"][:] = True
    cols.quality["accepted"][[1, 2]] = False  # one warning line covering 2 fits
    path = write_eft_json(cols, PROV, tmp_path / "w.json")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    warnings = [line for line in out if line.startswith("warning:")]
    assert len(warnings) == 1 and "2 fit(s)" in warnings[0]
    assert "0 error(s), 1 warning(s)" in out[-1]


# -- 6. the content decides the format, not the suffix ---------------------------------

@pytest.mark.parametrize("name, fmt", [("weird.json", "h5"), ("weird.h5", "eft-json"),
                                       ("weird.json", "spin-npz"),
                                       ("weird.dat", "humandata")])
def test_read_back_a_file_whose_suffix_disagrees(tmp_path, capsys, name, fmt):
    src = write_eft_json(random_columns(3, 0), PROV, tmp_path / "a.json")
    out = tmp_path / name
    assert main(["export", str(src), "-o", str(out), "--format", fmt]) == 0
    assert detect_format(out) == fmt
    assert main(["inspect", str(out)]) == 0
    assert f"format: {fmt}" in capsys.readouterr().out
    assert len(read_annotations(out)) == 3


def test_unreadable_content_falls_back_to_the_suffix(tmp_path):
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    assert detect_format(empty) == "h5"
    with pytest.raises(AnnotationError, match="corrupt, truncated"):
        read_annotations(empty)
    odd = tmp_path / "odd.dat"
    odd.write_bytes(b"\x00\x01 nothing known")
    with pytest.raises(AnnotationError, match="--input-format"):
        read_annotations(odd)
    with pytest.raises(AnnotationError, match="no such file"):
        read_annotations(tmp_path / "absent.json")
