"""`make lab`: the JupyterLab target passes --allow-root as root (Jupyter refuses to start as root
otherwise), and the server it starts answers over HTTP with the tutorial notebooks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).parent.parent
NOTEBOOKS = ["01_data_and_tokenizer.ipynb", "02_masking.ipynb", "03_pretraining.ipynb", "04_finetuning.ipynb",
             "05_inside_the_model.ipynb", "06_objectives.ipynb"]
# `-o .venv/.installed`: take the install step as done (the tests run inside that venv already)
MAKE_LAB = ["make", "--no-print-directory", "-o", ".venv/.installed", "lab"]


def test_make_lab_passes_allow_root_as_root():
    out = subprocess.run([MAKE_LAB[0], "-n", *MAKE_LAB[1:]], capture_output=True, text=True, cwd=ROOT).stdout
    assert "jupyter lab notebooks/" in out
    assert ("--allow-root" in out) == (os.geteuid() == 0)


def _stop(proc: subprocess.Popen) -> None:
    """End make and the Jupyter server under it (their own process group): SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
def test_make_lab_serves_the_six_notebooks(tmp_path):
    """Runs the real `make lab` target (its LAB_FLAGS, so --allow-root as root) on a free loopback
    port with a known token and no browser, then lists the notebooks through Jupyter's contents API."""
    port, token = free_port(), "lab-smoke-test"
    lab_args = (f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
                f"--IdentityProvider.token={token}")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}  # its server files stay in tmp
    log = open(tmp_path / "lab.log", "w+b")
    proc = subprocess.Popen([*MAKE_LAB, f"LAB_ARGS={lab_args}"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # `jupyter lab notebooks/` serves that folder as its root: the notebooks are at /api/contents/
        url = f"http://127.0.0.1:{port}/api/contents/?token={token}"
        listing, deadline = None, time.monotonic() + 90
        while listing is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    listing = json.loads(r.read())
            except OSError:
                time.sleep(1)
        log.seek(0)
        assert listing is not None, (f"no answer on port {port} (make exited {proc.poll()}):\n"
                                     + log.read().decode(errors="replace")[-3000:])
        names = sorted(c["name"] for c in listing["content"] if c["type"] == "notebook")
        assert names == NOTEBOOKS
    finally:
        _stop(proc)
        log.close()
