"""The ``eft`` command: body check and import-smpl, exit codes and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from eft.cli import main


def test_body_check_writes_png_and_reports(tmp_path, capsys):
    png = tmp_path / "check.png"
    assert main(["body", "check", "-o", str(png)]) == 0
    text = capsys.readouterr().out
    assert "eft-open-body-v1" in text
    assert "49/49 valid" in text
    assert "anatomy (head>neck>pelvis, left at +x): ok" in text
    assert "left_shoulder" in text and "bone mm" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000


def test_import_smpl_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "SMPL_NEUTRAL.pkl"
    bad.write_text("this is not a pickle")
    proc = subprocess.run(
        [sys.executable, "-m", "eft.cli", "body", "import-smpl", str(bad), "-o",
         str(tmp_path / "out.npz")], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eft: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.npz").exists()


def test_body_check_with_missing_model_path(tmp_path, capsys):
    assert main(["body", "check", "--no-png", "--model", str(tmp_path / "missing.pkl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_version_flag():
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
