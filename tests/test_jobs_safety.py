"""Job folders and processes that never lie (issue 14): final files checked by sha256,
re-merges that never list missing parts, stale temporaries removed, workers that end
with their parent, one line on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from eft._files import STALE_AFTER_S, file_sha256, locked_temporary, remove_stale_temporaries
from eft.jobs import Manifest, config_from_dict, merge_outputs, run_job
from eft.jobs.sharding import Shard

REPO = Path(__file__).resolve().parents[1]
N = 8


def job_dict(out: Path, n: int = N, **extra) -> dict:
    d = {"datasets": [{"kind": "synthetic", "name": "syn", "options": {"n": n, "seed": 5}}],
         "eft": {"max_iters": 2},
         "output": {"dir": str(out), "formats": ["h5", "eft-json"]},
         "batch_size": 4, "chunk_size": 2, "devices": ["cpu"]}
    d.update(extra)
    return d


@pytest.fixture(scope="module")
def done(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("done") / "out"
    result = run_job(config_from_dict(job_dict(out)), progress=False)
    assert result.manifest.complete
    return out


def test_manifest_records_the_final_files_sha256(done):
    m = Manifest.load(done)
    assert set(m.output_sha256) == {"h5", "eft-json"}
    for fmt, name in m.outputs.items():
        assert m.output_sha256[fmt] == file_sha256(done / name)


def test_truncated_final_file_is_written_again(tmp_path, caplog, one_thread):
    out = tmp_path / "out"
    run_job(config_from_dict(job_dict(out)), progress=False)
    final = out / Manifest.load(out).outputs["eft-json"]
    good = final.read_bytes()
    final.write_bytes(good[: len(good) // 2])  # complete folder, truncated final file
    caplog.set_level("WARNING", logger="eft.jobs")
    result = run_job(config_from_dict(job_dict(out)), progress=False)
    assert result.summary.fitted_this_run == 0
    from eft.annotations import read_annotations

    assert len(read_annotations(final)) == N
    assert Manifest.load(out).output_sha256["eft-json"] == file_sha256(final)
    assert "differ from what this job wrote" in caplog.text
    # an intact folder is still "up to date": nothing rewritten
    before = final.stat().st_mtime_ns
    caplog.clear()
    run_job(config_from_dict(job_dict(out)), progress=False)
    assert final.stat().st_mtime_ns == before and "differ" not in caplog.text


def test_interrupted_re_merge_never_lists_missing_parts(tmp_path, monkeypatch, one_thread):
    base = tmp_path / "sharded"
    config = config_from_dict(job_dict(base))
    dirs = [run_job(config, shard=Shard(i, 2), progress=False).output_dir for i in range(2)]
    merged = tmp_path / "merged"
    merge_outputs(dirs, merged)
    assert Manifest.load(merged).complete
    import eft.jobs.merge as merge_mod

    calls = {"n": 0}
    real = merge_mod.read_part

    def dies_midway(path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user stops the re-merge
        return real(path)

    monkeypatch.setattr(merge_mod, "read_part", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        merge_outputs(dirs, merged)
    m = Manifest.load(merged)
    assert not m.complete
    assert all((merged / p.file).is_file() for p in m.parts)
    monkeypatch.setattr(merge_mod, "read_part", real)
    assert merge_outputs(dirs, merged).manifest.complete


def test_stale_export_temporaries_are_removed_live_ones_kept(tmp_path, capsys):
    from eft.annotations import Provenance
    from eft.annotations.eft_json import write_eft_json
    from eft.annotations.synthetic import random_columns
    from eft.cli import main

    src = write_eft_json(random_columns(3, 0), Provenance.unknown("t"), tmp_path / "a.json")
    dst = tmp_path / "out.h5"
    stale = tmp_path / ".out.h5.k3j_x9a2.tmp"  # a killed export's (mkstemp naming)
    stale.write_bytes(b"\0" * 4096)
    old = time.time() - 2 * STALE_AFTER_S
    os.utime(stale, (old, old))
    live, fd = locked_temporary(dst)  # a writer that is still running
    os.utime(live, (old, old))
    other = tmp_path / ".notes.txt.abcdefgh.tmp"  # another target's: not ours to judge
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    try:
        assert main(["export", str(src), "-o", str(dst)]) == 0
        assert not stale.exists() and live.exists() and other.exists()
    finally:
        os.close(fd)
    assert remove_stale_temporaries(dst) == 1  # the writer died: its lock is gone
    assert not live.exists()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_loky_workers_exit_when_the_parent_is_killed(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    script = textwrap.dedent(f"""
        import os, time
        from joblib import Parallel, delayed

        def work(i):
            from eft.jobs.parent_watch import watch_parent
            watch_parent(0.2)
            open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
            time.sleep(120)   # a long chunk
            return i

        Parallel(n_jobs=2, backend="loky")(delayed(work)(i) for i in range(2))
        """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        t0 = time.time()
        while len(workers) < 2:
            assert time.time() - t0 < 90, "workers did not start"
            assert proc.poll() is None, "main process ended early"
            workers = [int(p.name) for p in pids.iterdir()]
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        t0 = time.time()
        while any(_pid_alive(p) for p in workers) and time.time() - t0 < 10:
            time.sleep(0.1)
        assert not any(_pid_alive(p) for p in workers), "workers outlived their parent"
    finally:
        for p in workers:  # only the workers this test started
            if _pid_alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def _interruptible() -> None:
    """In the child before exec: Ctrl-C back to its default.  A test run started in the
    background of a non-interactive shell inherits SIGINT ignored (POSIX), and a
    process that starts with SIGINT ignored rightly keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_in_eft_fit_prints_one_line(tmp_path, workers):
    out = tmp_path / "out"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump(job_dict(out, n=40, eft={"preset": "open-prior",
                                                           "max_iters": 20},
                                           workers=workers)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "eft.cli", "fit", str(cfg), "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_interruptible)
    t0 = time.time()
    while not list((out / "parts").glob("part-*.npz")) if out.is_dir() else True:
        assert proc.poll() is None and time.time() - t0 < 120
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130, err
    assert len(lines) == 1, err
    assert "rerun the same command to resume" in lines[0]
    assert "part(s) with" in lines[0] and "committed" in lines[0]


def test_ctrl_c_in_eft_train_prints_one_line(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({
        "datasets": [{"synthetic": {"n": 64, "seed": 1}}],
        "val": [{"kind": "synthetic", "n": 8}],
        "model": {"width": 32, "hidden": 32},
        "optim": {"steps": 100000, "batch_size": 8},
        "output": {"log_every": 1, "eval_every": 100000, "checkpoint_every": 0}}))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "eft.cli", "train", str(cfg), "--out",
                             str(out), "--threads", "1", "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible)
    t0 = time.time()
    while not (out / "log.jsonl").is_file():
        assert proc.poll() is None and time.time() - t0 < 180
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130, err
    assert len(lines) == 1, err
    assert lines[0].startswith("eft train: interrupted") and "rerun the same command" in lines[0]


def test_an_id_twice_in_one_dataset_is_skipped_not_a_refusal(tmp_path, monkeypatch):
    """Whatever reader repeats an id (e.g. PoseTrack files): the job skips the repeat as
    duplicate_id; only ids shared by two datasets stop it."""
    import dataclasses

    from eft.data.readers import ReadResult
    from eft.jobs import sources
    from eft.jobs.config import JobConfigError

    real = sources.read_one

    def twice(ds):
        res = real(ds)
        return ReadResult(exemplars=[*res.exemplars, dataclasses.replace(res.exemplars[0])],
                          skipped=list(res.skipped))

    monkeypatch.setattr(sources, "read_one", twice)
    cfg = config_from_dict(job_dict(tmp_path / "out", n=3))
    out = sources.read_sources(cfg.datasets)
    assert len(out.exemplars) == 3
    assert [s.reason for s in out.skipped] == ["duplicate_id"]
    two = config_from_dict(job_dict(tmp_path / "out", n=3,
                                    datasets=[cfg.to_dict()["datasets"][0]] * 2))
    with pytest.raises(JobConfigError, match="give the datasets different names"):
        sources.read_sources(two.datasets)


def test_parent_watch_leaves_threaded_workers_alone():
    """A task on a thread (Dask, maybe inside eft fit itself) must not tie its process
    to the process's parent nor ignore Ctrl-C."""
    import threading

    from eft.jobs import parent_watch

    before = signal.getsignal(signal.SIGINT)
    result = []
    t = threading.Thread(target=lambda: result.append(parent_watch.watch_parent(0.1)))
    t.start()
    t.join()
    assert result == [False] and not parent_watch._started
    assert signal.getsignal(signal.SIGINT) == before
