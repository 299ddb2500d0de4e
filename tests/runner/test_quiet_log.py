"""The runner's log is readable: no kernel chatter, and no refused widget messages from forked workers.

A notebook's DataLoader workers and per-image worker processes are forked from the kernel; a progress bar they create
is a widget the kernel session refuses (``attempted to send message from fork`` and a dump of the message: 38 blocks,
49 kB, for one smoke notebook). The library's bars (``wsss_lib.io.progress.tqdm``) are silent in forked children."""

from __future__ import annotations

import papermill as pm
import pytest
from test_reproduce import make_notebook

from wsss_lib.runner.notebooks import discover_notebooks
from wsss_lib.runner.run import run_notebooks

pytestmark = pytest.mark.slow

FORKING = '''
from pathlib import Path
import torch
from torch.utils.data import DataLoader
from {bars} import tqdm
from wsss_lib.io import for_each_missing

class Bars(torch.utils.data.Dataset):  # shows a bar in each worker, as lazily computed labels do
    def __len__(self):
        return 4
    def __getitem__(self, i):
        for _ in tqdm(range(2), desc=f"item {{i}}"):
            pass
        return torch.zeros(1)

for _ in DataLoader(Bars(), num_workers=2):
    pass

def write(image_id, path):
    for _ in tqdm(range(2), desc=image_id):
        pass
    path.write_text(image_id)

for_each_missing([str(i) for i in range(4)], lambda i: Path(out) / f"{{i}}.txt", write, workers=2, progress=False)
assert len(list(Path(out).glob("*.txt"))) == 4
'''

FORK_WARNING = "attempted to send message from fork"


def _forking_notebook(tmp_path, bars: str):
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    (tmp_path / "files").mkdir(exist_ok=True)
    return make_notebook(tmp_path / "notebooks" / "00_forks.ipynb", f'profile = "smoke"\nout = "{tmp_path / "files"}"',
                         FORKING.format(bars=bars))


@pytest.mark.parametrize("bars, refused", [("tqdm.auto", True), ("wsss_lib.io.progress", False)])
def test_bars_in_forked_workers_send_nothing_to_the_kernel(tmp_path, monkeypatch, capfd, bars, refused):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # the kernel shows bars, as in a real run
    nb = _forking_notebook(tmp_path, bars)
    pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), kernel_name="python3", progress_bar=False)
    printed = capfd.readouterr()
    # tqdm.auto (the control) shows the test can see the refused messages; the library's bars leave none
    assert (FORK_WARNING in printed.err + printed.out) is refused


def test_the_runner_log_has_no_kernel_warnings(tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    _forking_notebook(tmp_path, "wsss_lib.io.progress")
    notebooks = discover_notebooks(tmp_path / "notebooks")
    assert run_notebooks({"common": {}, "notebooks": {}}, "t", notebooks, tmp_path / "reports") == 0
    printed = capfd.readouterr()
    log = printed.err + printed.out
    assert "Kernel is running over TCP" not in log and FORK_WARNING not in log and "WARNING" not in log
    assert "1 notebook(s) done" in log
