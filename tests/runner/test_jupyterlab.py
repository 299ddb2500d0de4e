"""JupyterLab works out of the box: the server of `make lab` starts headless, answers its API, and a kernel it
starts runs a notebook's code (notebook 00's parameters and set-up cells, on a temporary work directory)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from wsss_lib.paths import repo_root

TOKEN = "wsss-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(port: int, path: str, method: str = "GET", body: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def _execute(ws, code: str, timeout: float = 240.0) -> tuple[str, list[str]]:
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({"header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                                   "msg_type": "execute_request", "version": "5.3"},
                        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                                    "allow_stdin": False, "stop_on_error": True}}))
    out: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            out.append("\n".join(msg["content"]["traceback"]))
        elif kind == "execute_reply" and msg["channel"] == "shell":
            return msg["content"]["status"], out
    raise TimeoutError(f"no execute_reply within {timeout} s; output so far: {out}")


@pytest.mark.slow
def test_jupyterlab_serves_and_runs_a_notebook_through_its_kernel(tmp_path):
    websocket = pytest.importorskip("websocket")  # websocket-client, a jupyter_server dependency
    port = _free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={repo_root() / 'notebooks'}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                _api(port, "/api/status")
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"JupyterLab did not start: {server.stderr.read()[-2000:] if server.poll() is not None else 'timeout'}")
                time.sleep(0.5)
        kernel = _api(port, "/api/kernels", "POST", {"name": "python3"})
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={TOKEN}",
                                         timeout=240)
        try:
            notebook = json.loads((repo_root() / "notebooks" / "00_dataset_class_groups.ipynb").read_text())
            code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
            overrides = f"work_dir = {str(tmp_path / 'work')!r}\nreports_dir = {str(tmp_path / 'reports')!r}\n"
            for source in ["".join(code[0]["source"]), overrides, "".join(code[1]["source"])]:
                status, out = _execute(ws, source)
                assert status == "ok", "".join(out)
            assert "profile=smoke dataset=synthetic-tiny split=train" in "".join(out)
        finally:
            ws.close()
        _api(port, f"/api/kernels/{kernel['id']}", "DELETE")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
