"""``gpu-media dump ... --ray`` as a user runs it: its own local Ray, quiet, and gone when the command ends.

Each test runs the command in a subprocess with ``RAY_TMPDIR`` set to a fresh folder, so
that the Ray processes the command starts can be told from any other Ray on the machine
(their command lines name that folder).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from dataset_helpers import need_ray, split_npz

need_ray()
pytestmark = pytest.mark.usefixtures("bounded")  # conftest.py: no test hangs CI

import gpu_media  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_NPZ = os.path.join(os.path.dirname(gpu_media.__file__), "demo", "demo.npz")


def _ray_processes(tmp: str) -> list[str]:
    """Command lines of the live processes that name ``tmp`` (the Ray this test's command started)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if tmp in cmd:
            out.append(f"{pid}: {cmd[:200]}")
    return out


def _gone(tmp: str, seconds: float = 20) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := _ray_processes(tmp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture
def run(tmp_path):
    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc to find the Ray processes")
    tmp = tempfile.mkdtemp(prefix="gmray", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = dict(os.environ, RAY_TMPDIR=tmp, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    env.pop("RAY_ADDRESS", None)
    shards = split_npz(DEMO_NPZ, tmp_path / "shards", [0, 5, 6, 8])
    argv = [sys.executable, "-m", "gpu_media.cli", "dump", shards, str(tmp_path / "out"), "--ray", "--batch-size", "2",
            "--workers", "1"]
    yield tmp, env, argv, tmp_path / "out"
    for line in _ray_processes(tmp):  # a failed test leaves nothing running either
        os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
    shutil.rmtree(tmp, ignore_errors=True)


def test_ray_run_is_quiet_and_shuts_down_the_ray_it_started(run):
    tmp, env, argv, out = run
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no Ray log line on a successful run (--verbose shows them)
    assert proc.stdout.startswith("wrote 8 images in ")
    assert (out / "images_0.index.json").is_file()
    assert _gone(tmp) == []


@pytest.mark.parametrize("sig,status,words", [(signal.SIGINT, 130, "gpu-media: interrupted"),
                                               (signal.SIGTERM, 143, "gpu-media: terminated")])
def test_interrupted_ray_run_shuts_down_the_ray_it_started(run, sig, status, words):
    """Ctrl-C or ``kill`` mid-run: the command exits and takes the local Ray it started with it."""
    tmp, env, argv, out = run
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "media").exists():  # Ray is up and the workers are writing
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        assert _ray_processes(tmp)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert words in err
    assert _gone(tmp) == []
