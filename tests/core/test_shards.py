"""Sharded per-image stages: strided unpadded shards from WSSS_SHARD / SLURM / torchrun, the last shard finishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsss_lib.artifacts import ArtifactStore, ShardPending
from wsss_lib.io import Shard, current_shard, for_each_missing, parse_shard

IDS = [f"img{i:02d}" for i in range(10)]


def _writer(log: list[str], fail_on: str | None = None):
    def write(image_id: str, path: Path) -> None:
        if image_id == fail_on:
            raise KeyboardInterrupt(f"killed at {image_id}")
        log.append(image_id)
        path.write_text(image_id)

    return write


def test_shard_sources_and_errors():
    assert current_shard({}) == Shard(0, 1, "default")
    array = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert current_shard(array) == Shard()  # opt-in: an array job (a sweep of profiles) does not shard by itself
    assert current_shard({**array, "WSSS_SHARD": "auto"}) == Shard(1, 3, "SLURM_ARRAY_TASK_ID")
    assert current_shard({"WSSS_SHARD": "auto", "RANK": "1", "WORLD_SIZE": "2"}) == Shard(1, 2, "RANK/WORLD_SIZE")
    assert current_shard({"WSSS_SHARD": "auto"}).count == 1
    assert current_shard({"WSSS_SHARD": "2/4", "RANK": "1", "WORLD_SIZE": "2"}) == Shard(2, 4, "WSSS_SHARD")
    for bad in ("4/4", "1", "a/b", "-1/3"):
        with pytest.raises(ValueError, match="INDEX/COUNT|0 <= index < count"):
            parse_shard(bad)


def test_shards_cover_the_split_exactly_once_and_only_the_last_finishes_the_stage(tmp_path):
    store = ArtifactStore(tmp_path)
    sd = store.stage("cams", {"k": 1}, name="sharded")
    path_of = lambda i: sd.path / f"{i}.txt"  # noqa: E731
    written: list[str] = []
    for index in range(3):
        counts = for_each_missing(IDS, path_of, _writer(written), progress=False, shard=Shard(index, 3))
        assert counts["shard"] == f"{index}/3" and counts["computed"] == len(IDS[index::3])
        if index < 2:
            assert counts["missing"] > 0
            with pytest.raises(ShardPending, match="marks the stage done"):
                sd.finish_images(len(IDS), counts)
            assert not sd.done
        else:
            assert counts["missing"] == 0
            sd.finish_images(len(IDS), counts)
    assert sorted(written) == IDS and len(written) == len(set(written))  # every image once, no padding
    done = sd.read_json("DONE.json")
    assert sd.done and done["images"] == 10 and "missing" not in done and done["shard"] == "2/3"


def test_a_killed_shard_resumes_where_it_stopped(tmp_path):
    written: list[str] = []
    path_of = lambda i: tmp_path / f"{i}.txt"  # noqa: E731
    shard = Shard(1, 2)
    with pytest.raises(KeyboardInterrupt):
        for_each_missing(IDS, path_of, _writer(written, fail_on="img05"), progress=False, shard=shard)
    assert written == ["img01", "img03"]
    counts = for_each_missing(IDS, path_of, _writer(written), progress=False, shard=shard)
    assert counts["skipped"] == 2 and counts["computed"] == 3 and written[2:] == ["img05", "img07", "img09"]


def test_the_environment_chooses_the_shard(tmp_path, monkeypatch):
    monkeypatch.setenv("WSSS_SHARD", "0/2")
    written: list[str] = []
    counts = for_each_missing(IDS, lambda i: tmp_path / f"{i}.txt", _writer(written), progress=False)
    assert written == IDS[0::2] and counts["missing"] == 5
    monkeypatch.delenv("WSSS_SHARD")
    counts = for_each_missing(IDS, lambda i: tmp_path / f"{i}.txt", _writer(written), progress=False)
    assert counts == {"computed": 5, "skipped": 5, "missing": 0}  # unsharded: the rest, no "shard" key
