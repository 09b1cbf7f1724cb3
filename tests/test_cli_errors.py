"""The ``eft`` command's answer to the file-system errors a user causes (a folder where a
file is wanted, no permission, a file where a folder is wanted): one ``eft: error:``
line and exit code 2, never a traceback; output piped into ``head`` ends quietly; a
real bug keeps its traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import eft.annotations.cli as annotations_cli
from eft.annotations import Provenance
from eft.annotations.eft_json import write_eft_json
from eft.annotations.synthetic import random_columns
from eft.cli import EXIT_BROKEN_PIPE, main, os_error_message

PROV = Provenance.unknown("test")


@pytest.fixture
def fits(tmp_path) -> Path:
    return write_eft_json(random_columns(4, 0), PROV, tmp_path / "fits.json")


def _eft(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eft.cli", *argv], capture_output=True,
                          text=True, timeout=300, **kw)


def _one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("eft: error: ") and "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


def _raise(exc: BaseException):
    def command(args) -> int:
        raise exc
    return command


# -- OSErrors of the files the user names ----------------------------------------------

@pytest.mark.parametrize("exc, words", [
    (PermissionError(13, "Permission denied", "/data/out/fits.h5"),
     ("/data/out/fits.h5", "Permission denied")),
    (IsADirectoryError(21, "Is a directory", "sheet"), ("sheet", "Is a directory")),
    (NotADirectoryError(20, "Not a directory", "a.json/b.h5"),
     ("a.json/b.h5", "Not a directory")),
    (FileExistsError(17, "File exists", "merged"), ("merged", "File exists")),
    (OSError(28, "No space left on device"), ("No space left on device",)),
    (OSError(18, "Invalid cross-device link", "/a/.x.tmp", None, "/b/x"),
     ("/a/.x.tmp -> /b/x", "cross-device")),
])
def test_os_errors_are_one_line_and_exit_2(monkeypatch, capsys, fits, exc, words):
    monkeypatch.setattr(annotations_cli, "_inspect", _raise(exc))
    assert main(["inspect", str(fits)]) == 2
    captured = capsys.readouterr()
    _one_error_line(captured.err, *words)
    assert "[Errno" not in captured.err


def test_os_error_message_without_errno():
    assert os_error_message(OSError("cannot map the file")) == "cannot map the file"
    assert os_error_message(TimeoutError()) == "TimeoutError"  # never an empty line


def test_a_real_bug_keeps_its_traceback(monkeypatch, fits):
    monkeypatch.setattr(annotations_cli, "_inspect", _raise(ZeroDivisionError("bug")))
    with pytest.raises(ZeroDivisionError, match="bug"):
        main(["inspect", str(fits)])


def test_keyboard_interrupt_is_not_swallowed(monkeypatch, fits):
    monkeypatch.setattr(annotations_cli, "_inspect", _raise(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        main(["inspect", str(fits)])


def test_png_path_that_is_a_folder(tmp_path, fits):
    (tmp_path / "sheet").mkdir()
    done = _eft("inspect", str(fits), "--png", str(tmp_path / "sheet"))
    assert done.returncode == 2
    _one_error_line(done.stderr, str(tmp_path / "sheet"))


@pytest.mark.parametrize("fmt", [[], ["--format", "h5"], ["--format", "eft-json"]])
def test_export_to_a_folder_or_below_a_file(tmp_path, capsys, fits, fmt):
    (tmp_path / "out.json").mkdir()
    assert main(["export", str(fits), "-o", str(tmp_path / "out.json"), *fmt]) == 2
    _one_error_line(capsys.readouterr().err, str(tmp_path / "out.json"), "folder")
    assert main(["export", str(fits), "-o", str(fits / "x.h5"), *fmt]) == 2
    _one_error_line(capsys.readouterr().err, str(fits), "not a folder")
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "out.json").iterdir())


def test_merge_into_a_file(tmp_path, monkeypatch, capsys):
    """A command of another group (``eft merge``, its output folder taken by a file)
    gets the same one line."""
    import eft.jobs.merge as merge
    from eft.jobs.store import job_lock

    def lock_only(inputs, output, force=False):
        with job_lock(Path(output)):  # where a merge starts writing
            raise AssertionError("the folder is a file: no lock")

    monkeypatch.setattr(merge, "merge_outputs", lock_only)
    taken = tmp_path / "merged"
    taken.write_text("a file, not a folder\n")
    assert main(["merge", str(tmp_path / "shard"), "-o", str(taken)]) == 2
    _one_error_line(capsys.readouterr().err, str(taken), "File exists")


# -- output cut short by its reader ----------------------------------------------------

def test_closed_pipe_ends_quietly(fits):
    """``eft inspect FILE | head -0``: the reader is gone before the first line."""
    proc = subprocess.Popen([sys.executable, "-m", "eft.cli", "inspect", str(fits)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == EXIT_BROKEN_PIPE
    assert err == "", err


def test_broken_pipe_in_process(monkeypatch, capsys, fits):
    monkeypatch.setattr(annotations_cli, "_inspect",
                        _raise(BrokenPipeError(32, "Broken pipe")))
    assert main(["inspect", str(fits)]) == EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, words", [
    (["eval", "default", "--synthetic", "-5"], "--synthetic: must be an integer >= 0"),
    (["eval", "default", "--batch-size", "0"], "--batch-size: must be an integer >= 1"),
    (["train", "training/synthetic_demo", "--steps", "0"], "--steps: must be an integer >= 1"),
    (["inspect", "x.h5", "--worst", "-1"], "--worst: must be an integer >= 0"),
    (["export", "x.h5", "-o", "y.h5", "--max-loss", "nan"],
     "--max-loss: must be a finite number >= 0"),
])
def test_bad_numbers_are_usage_errors(capsys, argv, words):
    """Counts and thresholds out of range are argparse errors naming the option (exit
    2), before anything runs (eft/_argtypes.py)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert words in capsys.readouterr().err



_WARNS = """
import argparse, sys, warnings
from eft import cli

def command(args):
    warnings.warn("resuming with settings changed since the checkpoint", stacklevel=2)
    warnings.warn("a library's own", RuntimeWarning, stacklevel=1)
    return 0

def parser():
    p = argparse.ArgumentParser(prog="eft")
    p.set_defaults(func=command)
    return p

cli._build_parser = parser
before = warnings.formatwarning
code = cli.main([])
assert warnings.formatwarning is before
sys.exit(code)
"""


def test_a_user_warning_prints_as_one_line(tmp_path):
    """A library UserWarning raised under ``eft`` prints as one ``eft: warning:`` line
    (no file, line number or source line); other warnings keep Python's form, and the
    formatter is Python's again once the command returns."""
    script = tmp_path / "warns.py"
    script.write_text(_WARNS)
    proc = subprocess.run([sys.executable, "-W", "always", str(script)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.splitlines()
    assert err[0] == "eft: warning: resuming with settings changed since the checkpoint"
    assert "RuntimeWarning: a library's own" in err[1] and "warns.py" in err[1]
