"""One stage, one computation: processes that need the same stage at once compute it once; the others wait and
reuse it; a reader never sees the stage change; a holder killed with SIGKILL is taken over.

Each case runs real processes (``spawn``) on one work directory: two writers started together or 2 s apart, and a
third process that reads the stage (``DONE.json``, every file's size and SHA-256, the weights or CAMs) throughout."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from wsss_lib.artifacts import ArtifactStore, StageDir

pytestmark = pytest.mark.slow

SPAWN = multiprocessing.get_context("spawn")


def _log(path: Path, **entry) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")


def _entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _reader(stage_path: str, stop: str, log: str, load: str) -> None:
    """Read the stage until ``stop`` exists: once finished, its DONE.json, files and hashes must never change."""
    sd = StageDir(stage=Path(stage_path).parent.name, key=Path(stage_path).name.rsplit("-", 1)[-1], path=Path(stage_path))
    seen, reads = None, 0
    while not Path(stop).exists():
        try:
            if sd.finished:
                sd.verify(hashes=True)
                done = sd.summary()
                if load == "weights":
                    sd.load_state()
                elif load == "cams":
                    from wsss_lib.formats.cam_io import load_cam

                    for path in sorted((sd.path / "npz").glob("*.npz")):
                        load_cam(path)
                if seen is not None and done != seen:
                    _log(Path(log), error=f"DONE.json changed: {seen} -> {done}")
                seen, reads = done, reads + 1
        except Exception as exc:  # noqa: BLE001 (any error a reader meets is the finding)
            _log(Path(log), error=f"{type(exc).__name__}: {exc}")
        time.sleep(0.02)
    _log(Path(log), reads=reads)


def _start_reader(sd: StageDir, tmp_path: Path, load: str):
    stop, log = tmp_path / "stop-reader", tmp_path / "reader.jsonl"
    reader = SPAWN.Process(target=_reader, args=(str(sd.path), str(stop), str(log), load))
    reader.start()
    return reader, stop, log


def _finish_reader(reader, stop: Path, log: Path) -> int:
    stop.touch()
    reader.join(60)
    entries = _entries(log)
    assert [e["error"] for e in entries if "error" in e] == []  # a correct stage is never reported corrupt
    return sum(e.get("reads", 0) for e in entries)


# ---- a toy stage through ArtifactStore.cached: the lock itself, and a killed holder -----------------------------

def _toy(work: str, log: str, seconds: float, start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))

    def compute(sd):
        _log(Path(log), computed=True)
        time.sleep(seconds)
        (sd.path / "result.txt").write_text(f"computed by {os.getpid()}")
        return "computed"

    result = ArtifactStore(work).cached("toy", {"x": 1}, compute, lambda sd: "reused")
    _log(Path(log), result=result)


def test_a_killed_holder_is_taken_over_and_the_stage_finishes_once(tmp_path, monkeypatch):
    monkeypatch.setenv("WSSS_LOCK_REPORT", "0.5")
    work, log = tmp_path / "work", tmp_path / "calls.jsonl"
    holder = SPAWN.Process(target=_toy, args=(str(work), str(log), 600.0, 0.0))
    holder.start()
    deadline = time.time() + 60
    while not any(e.get("computed") for e in _entries(log)) and time.time() < deadline:
        time.sleep(0.1)
    waiter = SPAWN.Process(target=_toy, args=(str(work), str(log), 0.5, 0.0))
    waiter.start()
    time.sleep(3)  # the waiter is blocked on the lock
    assert waiter.is_alive() and [e["pid"] for e in _entries(log) if e.get("computed")] == [holder.pid]
    os.kill(holder.pid, signal.SIGKILL)
    waiter.join(60)
    assert waiter.exitcode == 0
    computed = [e["pid"] for e in _entries(log) if e.get("computed")]
    assert computed == [holder.pid, waiter.pid]  # the waiter took the stage over when the holder died
    sd = ArtifactStore(work).stage("toy", {"x": 1})
    assert sd.done and sd.summary()["computed_by"]["pid"] == waiter.pid
    assert (sd.path / "result.txt").read_text() == f"computed by {waiter.pid}"
    assert sd.verify(hashes=True)["files"] == 2  # config.json, result.txt: no lock file in the manifest


# ---- a training stage and a TTA CAM stage, two writers and a reader ----------------------------------------------

def _train(work: str, data: str, log: str, start_at: float) -> None:
    from test_training_stage import stage_parts

    import wsss_lib.stages.training as training

    original = training._train_and_finish

    def logged(*args, **kwargs):
        _log(Path(log), computed=True)
        original(*args, **kwargs)

    training._train_and_finish = logged
    ctx, cfg = stage_parts(Path(work), data)
    time.sleep(max(0.0, start_at - time.time()))
    started = time.monotonic()
    trained = training.train_stage(ctx, cfg, progress=False)
    _log(Path(log), seconds=round(time.monotonic() - started, 1), weights=float(sum(
        v.double().sum() for v in trained.method.state_dict().values() if v.is_floating_point())))


def _cams(work: str, data: str, log: str, start_at: float) -> None:
    from test_training_stage import stage_parts

    import wsss_lib.stages.classifier as classifier
    from wsss_lib.inference.tta import TTAConfig
    from wsss_lib.stages.training import train_stage

    original = classifier.infer_cams

    def logged(*args, **kwargs):
        _log(Path(log), computed=True)
        return original(*args, **kwargs)

    classifier.infer_cams = logged
    ctx, cfg = stage_parts(Path(work), data)
    trained = train_stage(ctx, cfg, progress=False)  # finished by the test before
    time.sleep(max(0.0, start_at - time.time()))
    started = time.monotonic()
    classifier.infer_cams_stage(ctx, trained, "train", TTAConfig(scales=(1.0, 0.5)), progress=False)
    _log(Path(log), seconds=round(time.monotonic() - started, 1))


def _two_writers(target, tmp_path: Path, data: Path, delay: float, stage: StageDir, load: str) -> list[dict]:
    log = tmp_path / "calls.jsonl"
    reader, stop, reader_log = _start_reader(stage, tmp_path, load)
    start_at = time.time() + 5  # both processes have imported torch by then
    writers = [SPAWN.Process(target=target, args=(str(tmp_path / "work"), str(data), str(log), start_at + k * delay))
               for k in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(600)
    assert [w.exitcode for w in writers] == [0, 0]
    reads = _finish_reader(reader, stop, reader_log)
    entries = _entries(log)
    computed = [e["pid"] for e in entries if e.get("computed")]
    assert len(computed) == 1, entries  # one process computed the stage, the other waited and reused it
    assert stage.done and stage.summary()["computed_by"]["pid"] == computed[0]
    assert stage.verify(hashes=True)["files"] > 0 and reads > 0
    return entries


@pytest.mark.parametrize("delay", [0.0, 2.0], ids=["together", "2s-apart"])
def test_two_processes_train_one_stage_once(tmp_path, tiny_synthetic, delay):
    from test_training_stage import stage_parts

    ctx, cfg = stage_parts(tmp_path / "work", tiny_synthetic)
    sd = ctx.store.stage(cfg.stage, cfg.hashed(), name=cfg.run_name)
    entries = _two_writers(_train, tmp_path, tiny_synthetic, delay, sd, "weights")
    weights = {e["weights"] for e in entries if "weights" in e}
    assert len(weights) == 1  # both processes return the same weights: the ones the stage holds


@pytest.mark.parametrize("delay", [0.0, 2.0], ids=["together", "2s-apart"])
def test_two_processes_compute_one_cam_stage_once(tmp_path, tiny_synthetic, delay):
    from test_training_stage import stage_parts

    from wsss_lib.inference.tta import TTAConfig
    from wsss_lib.stages.classifier import infer_cams_stage
    from wsss_lib.stages.training import train_stage

    ctx, cfg = stage_parts(tmp_path / "work", tiny_synthetic)
    trained = train_stage(ctx, cfg, progress=False)
    key = {"classifier": trained.stage.key, "split": "train", "tta": TTAConfig(scales=(1.0, 0.5))}
    sd = ctx.store.stage("cams", key, name=f"{cfg.run_name}-train")
    _two_writers(_cams, tmp_path, tiny_synthetic, delay, sd, "cams")
    assert sd.path == infer_cams_stage(ctx, trained, "train", TTAConfig(scales=(1.0, 0.5)), progress=False).path
