"""Artifacts you can trust: one stage key means one result whatever the worker count, no non-finite
checkpoint, finished stages checked against what DONE.json recorded, every stage-file reader naming the file,
clean writes (no stale temporaries, named write errors, the umask's permissions)."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from toys import CFG, OPT, ToyMethod, ToySet

from wsss_lib.artifacts import ArtifactCorruptError, ArtifactStore
from wsss_lib.formats.cam_io import load_cam, save_cam
from wsss_lib.io import ArtifactReadError, ArtifactWriteError, atomic_path, atomic_write_bytes, remove_stale_temporaries
from wsss_lib.runner.verify import main as verify_main
from wsss_lib.train import TrainConfig, fit
from wsss_lib.train.trainer import SeededSamples, seed_everything

# ------------------------------------------------------------------ 1. the worker count changes nothing


def _with(cfg: TrainConfig, **changes) -> TrainConfig:
    return TrainConfig(**{**cfg.__dict__, **changes})


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_zero_and_two_workers_train_bit_identical_weights(tmp_path):
    """ToySet draws its noise from the global RNG in __getitem__, as torchvision's augmentations do."""
    zero, two = ToyMethod(), ToyMethod()
    fit(zero, ToySet(), None, CFG, OPT, tmp_path / "w0", progress=False)
    fit(two, ToySet(), None, _with(CFG, num_workers=2), OPT, tmp_path / "w2", progress=False)
    _assert_same_weights(zero, two)


def test_killed_with_zero_workers_resumed_with_two_equals_uninterrupted(tmp_path):
    straight = ToyMethod()
    fit(straight, ToySet(), None, CFG, OPT, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(ToyMethod(fail_at=4), ToySet(), None, CFG, OPT, tmp_path / "b", progress=False)
    resumed = ToyMethod()
    fit(resumed, ToySet(), None, _with(CFG, num_workers=2), OPT, tmp_path / "b", progress=False)
    _assert_same_weights(straight, resumed)


def test_augmented_samples_depend_on_seed_epoch_and_index_only(tiny_synthetic, tmp_path):
    """The real training transform (random resize, flip, colour jitter, RandAugment, crop) through DataLoaders of
    0 and 2 workers gives the same batches; the next epoch gives other draws; the caller's RNG is left alone."""
    from wsss_lib.data import DatasetConfig, open_dataset
    from wsss_lib.data.transforms import AugmentConfig, build_train_transform

    transform = build_train_transform(AugmentConfig(crop_size=48, resize_long_side=(40, 64), randaugment=True),
                                      (0.5,) * 3, (0.5,) * 3)
    dataset = open_dataset(DatasetConfig(data_root=str(tiny_synthetic)), "train", work_dir=tmp_path,
                           transform=transform, progress=False)
    samples = SeededSamples(dataset, seed=7)

    def images(workers: int, epoch: int) -> torch.Tensor:
        samples.epoch = epoch
        loader = torch.utils.data.DataLoader(samples, batch_size=3, num_workers=workers,
                                             collate_fn=lambda b: torch.stack([s["image"] for s in b]))
        return torch.cat(list(loader))

    def draws():
        return torch.rand(3).tolist() + np.random.rand(3).tolist() + [random.random()]

    seed_everything(123)
    before = draws()
    seed_everything(123)
    sample = samples[0]["image"]  # loading in the calling process leaves its generators where they were
    assert draws() == before
    torch.manual_seed(999)
    first = images(0, epoch=0)
    assert torch.equal(first[0], sample)
    assert torch.equal(first, images(2, epoch=0))
    assert not torch.equal(first, images(0, epoch=1))


# ------------------------------------------------------------------ 2. checkpoints are finite by construction


class NaNGradientMethod(ToyMethod):
    """A finite loss whose gradient is NaN at ``nan_grad_at``: d/dw [0 * sqrt(0 * sum(w))] = 0 * inf = NaN."""

    def __init__(self, nan_grad_at: int):
        super().__init__()
        self.nan_grad_at = nan_grad_at

    def losses(self, phase, batch, info, cache):
        terms = super().losses(phase, batch, info, cache)
        if info.step == self.nan_grad_at:
            terms["cls"] = terms["cls"] + 0.0 * torch.sqrt(0.0 * self.net.classifier.weight.sum())
        return terms


class NaNBufferMethod(ToyMethod):
    """Finite losses and gradients, but a buffer (as BN running statistics can) turns NaN during ``bad_epoch``."""

    def __init__(self, bad_epoch: int):
        super().__init__()
        self.bad_epoch = bad_epoch
        self.register_buffer("running_stat", torch.zeros(2))

    def losses(self, phase, batch, info, cache):
        if info.epoch == self.bad_epoch:
            self.running_stat.fill_(float("nan"))
        return super().losses(phase, batch, info, cache)


def test_nan_gradient_at_an_epochs_last_step_is_never_checkpointed(tmp_path):
    """3 steps per epoch: step 2 ends epoch 1. The loss stays finite; the gradient is NaN."""
    with pytest.raises(FloatingPointError, match=r"gradient of main parameter\(s\) \['net\.classifier\.weight'\].*"
                                                 r"step 2 \(epoch 1\).*none yet"):
        fit(NaNGradientMethod(nan_grad_at=2), ToySet(), None, CFG, OPT, tmp_path / "g", progress=False)
    assert not (tmp_path / "g" / "checkpoint.pt").exists()
    # in epoch 2 the error names the last good checkpoint, which holds finite weights only
    with pytest.raises(FloatingPointError, match=r"step 5 \(epoch 2\).*checkpoint\.pt"):
        fit(NaNGradientMethod(nan_grad_at=5), ToySet(), None, CFG, OPT, tmp_path / "h", progress=False)
    state = torch.load(tmp_path / "h" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(t).all() for t in state["method"].values())


def test_non_finite_buffer_stops_before_the_checkpoint_naming_it(tmp_path):
    with pytest.raises(FloatingPointError, match=r"end of epoch 2.*running_stat.*not checkpointed"):
        fit(NaNBufferMethod(bad_epoch=1), ToySet(), None, CFG, OPT, tmp_path / "b", progress=False)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_quick_evaluation_names_the_class_map_and_the_epoch(tmp_path):
    from wsss_lib.evaluation.quick import QuickEvalConfig
    from wsss_lib.evaluation.sweep import sweep_counts
    from wsss_lib.models.cam import CAMOutput

    with pytest.raises(FloatingPointError, match=r"class id\(s\) \[2\]"):
        sweep_counts(np.array([[[0.5]], [[np.nan]]], np.float32), np.array([1, 2]), np.zeros((1, 1), np.uint8),
                     (0.5,), 3)

    class Eval:
        ids, class_names, num_classes = ["img7"], ("background", "cat", "dog"), 3

        def load_pair(self, image_id):
            return np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)

        def label_of(self, image_id):
            return np.array([1.0, 1.0], np.float32)

    class NaNDog(ToyMethod):
        def cam_model(self):
            net = self.net

            class Wrapped(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = net

                def forward(self, x):
                    out = net(x)
                    cams = out.cams.clone()
                    cams[:, 1] = float("nan")
                    return CAMOutput(logits=out.logits, cams=cams)
            return Wrapped()

        @property
        def normalization(self):
            return (0.5,) * 3, (0.5,) * 3

    cfg = _with(CFG, epochs=1, eval_every=1, eval=QuickEvalConfig(size=8))
    with pytest.raises(FloatingPointError, match=r"^q: quick evaluation after epoch 1: the CAM of class\(es\) \['dog'\] "
                                                 r"holds NaN or infinite values on image 'img7'"):
        fit(NaNDog(), ToySet(), Eval(), cfg, OPT, tmp_path / "q", progress=False)


# ------------------------------------------------------------------ 3. DONE.json vouches for its files


def _finished_cam_stage(tmp_path: Path):
    store = ArtifactStore(tmp_path / "work")
    sd = store.stage("cams", {"classifier": "abc", "split": "train"}, name="cam-train")
    rng = np.random.default_rng(0)
    for image_id in ("a", "b", "c"):
        save_cam(sd.file("npz") / f"{image_id}.npz", np.array([1]), rng.random((1, 4, 4)), rng.random((1, 16, 16)))
    sd.mark_done(images=3)
    return store, sd


def test_truncated_emptied_or_deleted_files_of_a_finished_stage_are_named(tmp_path):
    store, sd = _finished_cam_stage(tmp_path)
    assert sd.done and sd.summary()["manifest"]["files"] == 4  # three CAMs and config.json
    target = sd.file("npz") / "b.npz"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ArtifactCorruptError, match=rf"{target}.* has {len(data) // 2} bytes, DONE.json recorded "
                                                   rf"{len(data)}.*rm -rf {sd.path}"):
        _ = sd.done
    with pytest.raises(ArtifactCorruptError, match="b.npz"):  # reusing the stage through the store fails the same way
        store.cached("cams", {"classifier": "abc", "split": "train"}, lambda s: None, lambda s: "reused",
                     name="cam-train")
    target.write_bytes(b"")  # emptied
    with pytest.raises(ArtifactCorruptError, match="has 0 bytes"):
        _ = sd.done
    target.unlink()  # deleted
    with pytest.raises(ArtifactCorruptError, match=rf"{target} is missing"):
        _ = sd.done
    with pytest.raises(FileNotFoundError, match=r"is marked finished: delete that folder"):
        load_cam(target)


def test_altered_content_of_the_same_size_is_found_by_the_hash_check(tmp_path, monkeypatch):
    _, sd = _finished_cam_stage(tmp_path)
    target = sd.file("npz") / "a.npz"
    data = bytearray(target.read_bytes())
    data[-30] ^= 0xFF
    target.write_bytes(bytes(data))
    assert sd.done  # sizes only, by default
    monkeypatch.setenv("WSSS_VERIFY", "1")
    with pytest.raises(ArtifactCorruptError, match=rf"{target} has the recorded size but not the recorded SHA-256"):
        _ = sd.done


def test_large_stages_record_sizes_without_hashes(tmp_path, monkeypatch):
    monkeypatch.setenv("WSSS_HASH_LIMIT", "10")
    _, sd = _finished_cam_stage(tmp_path)
    assert sd.summary()["manifest"]["hashes"] == "none"
    monkeypatch.setenv("WSSS_VERIFY", "1")
    assert sd.verify(hashes=True)["hashed"] == 0 and sd.done


def test_verify_command_reports_every_stage_and_fails_on_corruption(tmp_path, capsys):
    store, sd = _finished_cam_stage(tmp_path)
    store.stage("classifier", {"method": "cam"}, name="unfinished")
    assert verify_main([str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "ok           cams/cam-train-" in out and "unfinished   classifier/unfinished-" in out
    assert "2 stage folders: 1 ok, 0 CORRUPT, 1 unfinished" in out
    (sd.file("npz") / "c.npz").unlink()
    assert verify_main([str(store.root)]) == 1
    out = capsys.readouterr().out
    assert "CORRUPT" in out and "c.npz is missing" in out and f"rm -rf {sd.path}" in out


def test_readers_of_stage_files_name_the_file(tmp_path):
    store = ArtifactStore(tmp_path / "work")
    sd = store.stage("classifier", {"method": "cam"}, name="cam")
    sd.file("model.pt").write_bytes(b"not a zip archive")
    with pytest.raises(ArtifactReadError, match=rf"{sd.file('model.pt')}: cannot be read as a PyTorch state dict"):
        sd.load_state("model.pt")
    with pytest.raises(ArtifactReadError, match=rf"{sd.file('model.pt')}.*weights of a Linear"):
        sd.load_into(torch.nn.Linear(2, 2))
    sd.save_state("model.pt", torch.nn.Linear(2, 3).state_dict())
    with pytest.raises(ArtifactReadError, match=r"(?s)model\.pt.*size mismatch"):
        sd.load_into(torch.nn.Linear(2, 2))
    sd.file("history.csv").write_text("")
    with pytest.raises(ArtifactReadError, match=rf"{sd.file('history.csv')}: cannot be read as a CSV table"):
        sd.read_frame("history.csv")
    sd.file("counts.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ArtifactReadError, match=rf"{sd.file('counts.npz')}"):
        sd.load_npz("counts.npz", ("counts",))
    np.savez(sd.file("other.npz"), x=np.zeros(2))
    with pytest.raises(ArtifactReadError, match=r"other\.npz.*missing fields \['counts'\]"):
        sd.load_npz("other.npz", ("counts",))
    sd.file("config.json").write_text("{truncated")
    with pytest.raises(ArtifactReadError, match=rf"{sd.file('config.json')}: cannot be read"):
        store.stage("classifier", {"method": "cam"}, name="cam")
    cam = tmp_path / "cams" / "x" / "npz" / "img.npz"
    save_cam(cam, np.array([1]), np.ones((1, 2, 2)), np.ones((1, 8, 8)))
    cam.write_bytes(cam.read_bytes()[:40])
    with pytest.raises(ArtifactReadError, match=rf"{cam}: cannot be read as a CAM file"):
        load_cam(cam)


def test_a_corrupt_checkpoint_or_history_is_named_on_resume(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit(ToyMethod(fail_at=4), ToySet(), None, CFG, OPT, tmp_path / "r", progress=False)
    (tmp_path / "r" / "history.csv").write_text("")
    with pytest.raises(ArtifactReadError, match=r"history\.csv: cannot be read as the training history"):
        fit(ToyMethod(), ToySet(), None, CFG, OPT, tmp_path / "r", progress=False)
    checkpoint = tmp_path / "r" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(ArtifactReadError, match=rf"{checkpoint}: cannot be read as a training checkpoint.*rm "):
        fit(ToyMethod(), ToySet(), None, CFG, OPT, tmp_path / "r", progress=False)


# ------------------------------------------------------------------ 4. clean writes

_KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from wsss_lib.io import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"x" * 100_000)
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_killed_write_leaves_no_temporary_after_the_rerun(tmp_path):
    store = ArtifactStore(tmp_path / "work")
    sd = store.stage("cams", {"k": 1}, name="run")
    target = sd.file("npz") / "a.npz"
    target.parent.mkdir(parents=True)
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)])
    assert done.returncode == -signal.SIGKILL
    left = list(sd.path.rglob(".*.tmp"))
    assert len(left) == 1 and not target.exists()
    legacy = sd.file(".model.pt.abc123.tmp")  # the naming before writers were recorded in the name
    legacy.write_bytes(b"old")
    with atomic_path(sd.file("live.bin")) as live:  # a live writer's file (this process) is kept
        live.write_bytes(b"y")
        store.stage("cams", {"k": 1}, name="run")  # the rerun opens the stage
        assert list(sd.path.rglob(".*.tmp")) == [live]
    assert not list(sd.path.rglob(".*.tmp")) and sd.file("live.bin").read_bytes() == b"y"


def test_other_hosts_temporaries_are_kept_until_old(tmp_path):
    fresh = tmp_path / ".f.otherhost-1.abc.tmp"
    old = tmp_path / ".g.otherhost-1.abc.tmp"
    fresh.write_bytes(b"1"), old.write_bytes(b"2")
    os.utime(old, (0, 0))
    assert remove_stale_temporaries(tmp_path) == [old] and fresh.exists()


def test_a_full_disk_is_named_with_the_path(tmp_path, monkeypatch):
    target = tmp_path / "out" / "model.pt"
    with pytest.raises(ArtifactWriteError, match=rf"cannot write {target}: the disk is full") as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and not list(target.parent.iterdir())
    # torch.save reports a full disk as "enforce fail ... unexpected pos": told apart by the free space left
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=4096))
    with pytest.raises(ArtifactWriteError, match=rf"cannot write {target}: the disk is full \(4096 bytes free"):
        with atomic_path(target):
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")


def test_permission_errors_name_the_path(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes into read-only folders: the refusal is simulated
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")
        monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(ArtifactWriteError, match=rf"cannot write {folder / 'x.bin'}: permission denied"):
        atomic_write_bytes(folder / "x.bin", b"1")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_umask_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"1")
        save_cam(tmp_path / "c.npz", np.array([1]), np.ones((1, 2, 2)), np.ones((1, 8, 8)))
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == mode
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == mode


def test_history_frames_written_by_stages_reload(tmp_path):
    store = ArtifactStore(tmp_path / "work")
    sd = store.stage("s", {"a": 1})
    frame = pd.DataFrame({"epoch": [1, 2], "loss": [0.5, 0.25]})
    sd.write_frame("history.csv", frame)
    sd.mark_done()
    assert sd.done and sd.read_frame("history.csv").equals(frame)


def test_a_classifier_stage_trained_with_zero_or_two_workers_saves_the_same_weights(tmp_path, tiny_synthetic):
    """The user-facing promise: one stage key (workers are not part of it) names one set of weights, with the real
    augmentation (random resize, flip, colour jitter, crop) on the synthetic benchmark."""
    from conftest import tiny_configs

    from wsss_lib.stages.classifier import train_classifier
    from wsss_lib.stages.context import RunContext

    trained = []
    for workers in (0, 2):
        ctx = RunContext.create("unit", str(tmp_path / f"work{workers}"), str(tmp_path / f"reports{workers}"))
        cfg = tiny_configs(tiny_synthetic, num_workers=workers).classifier
        assert cfg.train.num_workers == workers
        trained.append(train_classifier(ctx, cfg, progress=False))
    zero, two = trained
    assert zero.stage.key == two.stage.key
    # a finished training stage keeps model.pt and drops the resume checkpoint (same weights + optimizer states)
    assert zero.stage.file("model.pt").is_file() and not zero.stage.file("checkpoint.pt").exists() and zero.stage.done
    _assert_same_weights(zero.method, two.method)


def test_a_real_full_disk_is_named_for_torch_and_numpy_writers(tmp_path):
    """On a 1 MiB tmpfs (needs root and mount; skipped elsewhere): torch.save's 'unexpected pos' and numpy's
    ENOSPC both become the same named error, and nothing is left behind."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(ArtifactWriteError, match=rf"cannot write {mount}/run/checkpoint\.pt: the disk is full"):
            with atomic_path(mount / "run" / "checkpoint.pt") as tmp:
                torch.save({"w": torch.zeros(1_000_000)}, tmp)
        with pytest.raises(ArtifactWriteError, match=rf"cannot write {mount}/cams/a\.npz: the disk is full"):
            save_cam(mount / "cams" / "a.npz", np.array([1]), np.zeros((1, 2, 2)), np.zeros((1, 600, 600)))
        assert not list(mount.rglob("*.*"))
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_quick_evaluation_scores_images_without_labels_as_background():
    """COCO has images without annotations; the quick evaluation crashed on them (found by the paper-coco dry run)."""
    from wsss_lib.evaluation.quick import QuickEvalConfig, quick_cam_miou

    class Eval:
        ids, class_names, num_classes = ["empty", "cat"], ("background", "cat"), 2

        def load_pair(self, image_id):
            mask = np.zeros((8, 8), np.uint8)
            if image_id == "cat":
                mask[2:6, 2:6] = 1
            return np.zeros((8, 8, 3), np.uint8), mask

        def label_of(self, image_id):
            return np.array([float(image_id == "cat")], np.float32)

    net = ToyMethod().net
    net.classifier = torch.nn.Conv2d(4, 1, 1, bias=False)
    result = quick_cam_miou(net, Eval(), (0.5,) * 3, (0.5,) * 3, QuickEvalConfig(size=8))
    assert result["images"] == 2 and 0.0 <= result["miou"] <= 1.0


def test_done_json_records_how_long_the_finishing_process_computed_the_stage(tmp_path):
    store = ArtifactStore(tmp_path)
    timed = store.stage("cams", {"a": 1})
    with timed.computing() as todo:
        assert todo
        time.sleep(0.3)
        timed.file("x.txt").write_text("x")
        timed.mark_done(images=1)
    computed_by = timed.summary()["computed_by"]
    assert 0.3 <= computed_by["seconds"] < 30 and computed_by["started"].endswith("+00:00")
    untimed = store.stage("cams", {"a": 2})  # finished outside computing(): no time to report, none invented
    untimed.mark_done(images=0)
    assert "seconds" not in untimed.summary()["computed_by"]
