"""Configuration, atomic writes and the artifact store."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from wsss_lib.artifacts import ArtifactStore, StageNotFoundError
from wsss_lib.config import available_profiles, config_hash, from_dict, load_profile, to_dict
from wsss_lib.io import atomic_path, atomic_write_text


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    sizes: tuple[int, int] = (1, 2)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)


def test_from_dict_nested_and_unknown_keys():
    cfg = from_dict(Outer, {"name": "y", "inner": {"rate": 0.5, "sizes": [3, 4]}})
    assert cfg == Outer("y", Inner(0.5, (3, 4)))
    assert to_dict(cfg) == {"name": "y", "inner": {"rate": 0.5, "sizes": [3, 4]}}
    with pytest.raises(KeyError, match=r"'rte' \(did you mean 'rate'\?\)"):
        from_dict(Outer, {"inner": {"rte": 1.0}})


def test_config_hash_is_stable_and_sensitive():
    assert config_hash(Outer()) == config_hash(Outer())
    assert config_hash(Outer()) != config_hash(Outer(inner=Inner(rate=0.2)))
    assert config_hash("stage", Outer()) != config_hash("other", Outer())


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_artifact_store_caches_and_requires(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []

    def compute(sd):
        calls.append(1)
        sd.file("x.txt").write_text("42")
        return 42

    def load(sd):
        return int(sd.file("x.txt").read_text())

    assert store.cached("stats", Outer(), compute, load, name="voc") == 42
    assert store.cached("stats", Outer(), compute, load, name="voc") == 42
    assert len(calls) == 1
    sd = store.require("stats", Outer(), name="voc")
    assert sd.done and sd.config()["config"]["name"] == "x" and sd.path.name.startswith("voc-")
    with pytest.raises(StageNotFoundError, match="has no finished output"):
        store.require("stats", Outer(name="other"), name="voc")
    store.cached("stats", Outer(), compute, load, name="voc", force=True)
    assert len(calls) == 2 and [s.path for s in store.list("stats")] == [sd.path]


def test_interrupted_stage_is_not_done(tmp_path):
    store = ArtifactStore(tmp_path)

    def compute(sd):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.cached("cams", Outer(), compute, lambda sd: None)
    assert store.list("cams") == [] and len(store.list("cams", done_only=False)) == 1


def test_profiles_exist_and_parse():
    assert {"smoke", "paper-voc", "paper-coco"} <= set(available_profiles())
    for name in ("smoke", "paper-voc", "paper-coco"):
        profile = load_profile(name)
        assert profile["common"]["profile"] == name
    with pytest.raises(FileNotFoundError, match="available"):
        load_profile("nope")


def test_the_io_package_re_exports_every_name_its_modules_export():
    """wsss_lib.io's explicit __all__ is its modules' __all__, each name imported there, and nothing else public: a
    name added to a module but not to the package (or the reverse) fails here."""
    import wsss_lib.io as io
    from wsss_lib.io import atomic, per_image

    assert io.__all__ == [*atomic.__all__, *per_image.__all__]
    assert [name for name in io.__all__ if not hasattr(io, name)] == []
    public = {name for name in vars(io) if not name.startswith("_")} - {"atomic", "per_image", "progress"}
    assert public == set(io.__all__)
