"""The ``gpu-media`` command's failures: one line on stderr, exit status 2, nothing written.

Every case runs the real entry point (``python -m gpu_media.cli``) in a subprocess and
checks: status 2; stderr is exactly one line ``gpu-media: error: ...`` naming the file
or entry; no traceback; nothing on stdout; and every file under the test's folder (the
input, the output folder and its parent) byte for byte as before. Also ``--version``
and ``gpu-media view``'s refusal to list folders.
"""

import errno
import io
import os
import re
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile

import numpy as np
import pytest

import gpu_media as gm
from gpu_media import cli
from gpu_media.formats.shards import npz_shards

DEMO_COCO = os.path.join(os.path.dirname(gm.__file__), "demo", "coco")


# --------------------------------------------------------------------------- helpers


def gpu_media_cmd(*argv, timeout=120):
    env = dict(os.environ)
    env.pop("GPU_MEDIA_DEVICE", None)
    return subprocess.run([sys.executable, "-m", "gpu_media.cli", *map(str, argv)], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


def tree(root):
    """Every folder and file under ``root``: {relative path: bytes, or None for a folder}."""
    out = {}
    for d, dirs, files in os.walk(str(root)):
        for name in dirs:
            out[os.path.relpath(os.path.join(d, name), str(root))] = None
        for name in files:
            p = os.path.join(d, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, str(root))] = f.read()
    return out


def assert_one_line_error(proc, *names):
    """Status 2, no traceback, no stdout, and stderr one ``gpu-media: error:`` line naming every ``names``."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert lines[0].startswith("gpu-media: error: "), lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def images(n=2, h=32, w=32):
    return np.full((n, h, w, 3), 7, np.uint8)


def good_npz(path, compressed=False):
    (np.savez_compressed if compressed else np.savez)(path, images=images())
    return str(path)


# --------------------------------------------------------------------------- bad .npz inputs


def _member_data_offset(path, member):
    """Where ``member``'s (possibly compressed) bytes start in the zip file ``path``, and their size."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
    name_len = int.from_bytes(local[26:28], "little")
    extra_len = int.from_bytes(local[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def make_bad_npz(kind, path):
    """A broken input of ``kind``; returns what the error line must name besides the file."""
    if kind == "empty":
        path.write_bytes(b"")
        return ["empty"]
    if kind == "truncated":
        good_npz(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return ["truncated"]
    if kind == "bad_crc":  # an uncompressed member with one pixel byte changed: zipfile's "Bad CRC-32"
        good_npz(path)
        start, size = _member_data_offset(path, "images.npy")
        _flip(path, start + size - 10)
        return ["'images'", "CRC"]
    if kind == "bad_deflate":  # a compressed member with a byte of its deflate stream changed
        np.savez_compressed(path, images=np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), np.uint8))
        start, size = _member_data_offset(path, "images.npy")
        _flip(path, start + size // 2)
        return ["'images'"]
    if kind == "object_array":
        np.savez(path, images=images(), captions=np.array(["a", {"b": 1}], dtype=object))
        return ["'captions'", "object"]
    if kind == "object_images":
        np.savez(path, images=np.array([None, 1], dtype=object))
        return ["'images'", "object"]
    if kind == "text":
        path.write_text("images: a text file, not an archive\n")
        return ["not an .npz (zip) file"]
    if kind == "npy":
        with open(path, "wb") as f:
            np.save(f, images())
        return [".npy"]
    if kind == "zero_d_images":  # np.savez(f, images=np.array(5, np.uint8)): no len()
        np.savez(path, images=np.array(5, np.uint8))
        return ["'images'", "shape ()"]
    if kind == "huge_header":  # a header claiming 3 EB: refused before numpy allocates it
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 10**6, 10**6, 3)})
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("images.npy", header.getvalue() + bytes(64))
        return ["'images'", "(1000000, 1000000, 1000000, 3)", "memory available"]
    if kind == "missing":
        return []
    if kind == "folder":  # read as a folder of .npz shards (gpu_media.formats.shards), holding none
        path.mkdir()
        return ["no .npz shards"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty", "truncated", "bad_crc", "bad_deflate", "object_array", "object_images",
                                  "text", "npy", "missing", "folder", "zero_d_images",
                                  "huge_header"])
def test_bad_npz_is_one_line_and_writes_nothing(tmp_path, kind):
    inp = tmp_path / "batch.npz"
    words = make_bad_npz(kind, inp)
    out = tmp_path / "out"
    before = tree(tmp_path)
    line = assert_one_line_error(gpu_media_cmd("dump", inp, out, "--device", "cpu"), inp, *words)
    assert "pickle" not in line  # object arrays are refused for safety; nothing suggests allow_pickle
    assert tree(tmp_path) == before
    assert not out.exists()
    # the reader raises the library's error with the same message
    with pytest.raises(gm.MediaError) as info:
        if kind == "folder":
            npz_shards(str(inp))
        else:
            cli.load_npz(str(inp))
    # (the memory available, which a huge header's message quotes, changes between the two calls)
    gib = re.compile(r"\d+(\.\d+)? GiB")
    assert gib.sub("N GiB", line) == gib.sub("N GiB", f"gpu-media: error: {info.value}")


def test_damaged_inputs_really_are_damaged(tmp_path):
    """The broken files above fail numpy's own reader the way the issue describes (else the tests prove nothing)."""
    for kind, exc in [("empty", EOFError), ("truncated", zipfile.BadZipFile), ("bad_crc", zipfile.BadZipFile),
                      ("object_array", ValueError), ("text", ValueError)]:
        path = tmp_path / f"{kind}.npz"
        make_bad_npz(kind, path)
        with pytest.raises(exc), np.load(path, allow_pickle=False) as z:
            for name in z.files:
                z[name]


def test_good_npz_still_dumps(tmp_path):
    for compressed in (False, True):
        out = tmp_path / f"out{compressed}"
        proc = gpu_media_cmd("dump", good_npz(tmp_path / f"in{compressed}.npz", compressed), out, "--device", "cpu")
        assert proc.returncode == 0, proc.stderr
        assert (out / "images_0.index.json").is_file()


# --------------------------------------------------------------------------- bad output folders


def test_output_folder_is_an_existing_file(tmp_path):
    inp = good_npz(tmp_path / "in.npz")
    out = tmp_path / "out"
    out.write_bytes(b"keep me")
    before = tree(tmp_path)
    assert_one_line_error(gpu_media_cmd("dump", inp, out, "--device", "cpu"), out, "existing file")
    assert tree(tmp_path) == before


def test_output_folder_under_a_file(tmp_path):
    """Root cannot create a folder inside a file either."""
    inp = good_npz(tmp_path / "in.npz")
    blocker = tmp_path / "plain.txt"
    blocker.write_bytes(b"x")
    out = blocker / "sub" / "out"
    before = tree(tmp_path)
    assert_one_line_error(gpu_media_cmd("dump", inp, out, "--device", "cpu"), out, blocker)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("exists", [True, False])
def test_output_folder_not_writable(tmp_path, exists):
    """A folder without write permission (as a user: root is not stopped by permission bits)."""
    if os.geteuid() == 0:
        pytest.skip("root writes regardless of permission bits; test_output_folder_on_a_read_only_file_system "
                    "covers root")
    inp = good_npz(tmp_path / "in.npz")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "old.txt").write_bytes(b"old")
    out = locked if exists else locked / "new"
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        before = tree(tmp_path)
        assert_one_line_error(gpu_media_cmd("dump", inp, out, "--device", "cpu"), out, "not writable")
        assert tree(tmp_path) == before
    finally:
        locked.chmod(stat.S_IRWXU)


def _root_proof_unwritable_folder():
    """A folder in which even root cannot create a file (Linux sysfs), or None."""
    for d in ("/sys", "/sys/kernel"):
        if not os.path.isdir(d):
            continue
        try:
            fd, tmp = tempfile.mkstemp(dir=d)
        except OSError:
            return d
        os.close(fd)
        os.unlink(tmp)
    return None


@pytest.mark.parametrize("exists", [True, False])
def test_output_folder_on_a_read_only_file_system(tmp_path, exists):
    """The sysfs refuses new files to root as well, so this case runs as root too."""
    folder = _root_proof_unwritable_folder()
    if folder is None:
        pytest.skip("no folder here refuses new files to this user (not Linux, or no sysfs)")
    inp = good_npz(tmp_path / "in.npz")
    out = folder if exists else os.path.join(folder, f"gpu-media-test-{uuid.uuid4().hex[:8]}")
    before = sorted(os.listdir(folder))
    assert_one_line_error(gpu_media_cmd("dump", inp, out, "--device", "cpu"), out, "not writable")
    assert sorted(os.listdir(folder)) == before


def test_demo_and_coco_into_an_existing_file(tmp_path):
    out = tmp_path / "out"
    out.write_bytes(b"keep me")
    before = tree(tmp_path)
    assert_one_line_error(gpu_media_cmd("demo", out, "--device", "cpu"), out, "existing file")
    assert_one_line_error(gpu_media_cmd("dump", os.path.join(DEMO_COCO, "images"), out, "--coco",
                                        os.path.join(DEMO_COCO, "instances.json"), "--device", "cpu"),
                          out, "existing file")
    assert tree(tmp_path) == before


def test_coco_missing_instances_file(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "nope.json"
    assert_one_line_error(gpu_media_cmd("dump", os.path.join(DEMO_COCO, "images"), out, "--coco", missing,
                                        "--device", "cpu"), missing)
    assert tree(tmp_path) == {}


def test_view_errors_are_one_line(tmp_path):
    missing = tmp_path / "missing"
    assert_one_line_error(gpu_media_cmd("view", missing, timeout=30), missing)
    a_file = tmp_path / "f.txt"
    a_file.write_bytes(b"x")
    assert_one_line_error(gpu_media_cmd("view", a_file, timeout=30), a_file)
    assert a_file.read_bytes() == b"x"


# --------------------------------------------------------------------------- the handler in main


@pytest.mark.parametrize("exc,words", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out/media/images/x.png"),
     ["/data/out/media/images/x.png", os.strerror(errno.ENOSPC)]),
    (ValueError("line one\nline two"), ["line one line two"]),
    (gm.DeviceError("device='gpu' but no GPU"), ["device='gpu'"]),
])
def test_library_failures_mid_dump_are_one_line(tmp_path, capsys, monkeypatch, exc, words):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(cli, "write_batches", fail)
    rc = cli.main(["dump", good_npz(tmp_path / "in.npz"), str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("gpu-media: error: ")
    for word in words:
        assert word in err


def test_ctrl_c_exits_130_without_a_traceback(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "write_batches", interrupted)
    rc = cli.main(["dump", good_npz(tmp_path / "in.npz"), str(tmp_path / "out"), "--device", "cpu"])
    assert rc == 130
    assert capsys.readouterr().err == "gpu-media: interrupted\n"


def test_a_bug_still_shows_its_traceback(tmp_path, monkeypatch):
    """Only expected failures become the one line; anything else is a bug and keeps its traceback."""
    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "write_batches", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["dump", good_npz(tmp_path / "in.npz"), str(tmp_path / "out"), "--device", "cpu"])


def test_check_out_dir_leaves_nothing(tmp_path):
    (tmp_path / "exists").mkdir()
    before = tree(tmp_path)
    cli.check_out_dir(tmp_path / "exists")
    cli.check_out_dir(tmp_path / "new" / "deeper")
    assert tree(tmp_path) == before


# --------------------------------------------------------------------------- --version


def test_version():
    proc = gpu_media_cmd("--version", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"gpu-media {gm.__version__}\n"
    import tomllib

    with open(os.path.join(os.path.dirname(os.path.dirname(gm.__file__)), "pyproject.toml"), "rb") as f:
        assert tomllib.load(f)["project"]["version"] == gm.__version__  # pyproject's version and the package's agree
    assert gm.__version__ == "0.3.0"


# --------------------------------------------------------------------------- view: no directory listings


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_view_serves_files_but_no_directory_listings(tmp_path):
    out = tmp_path / "d"
    assert cli.main(["dump", good_npz(tmp_path / "in.npz"), str(out), "--device", "cpu"]) == 0
    (out / "empty-folder").mkdir()
    image_rel = sorted(os.listdir(out / "media" / "images"))
    image_rel = next(n for n in image_rel if n.endswith(".png"))
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "gpu_media.cli", "view", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/index.html"), url
        base = url[: -len("index.html")]
        status, root_page = _get(base)
        assert status == 200
        assert root_page == (out / "index.html").read_bytes()  # "/" is the viewer page
        status, png = _get(base + "media/images/" + image_rel)
        assert status == 200 and png == (out / "media" / "images" / image_rel).read_bytes()
        for folder in ("media/", "media", "media/images/", "media/images/mask/", "empty-folder/"):
            status, body = _get(base + folder)
            assert status in (403, 404), (folder, status)
            assert image_rel.encode() not in body and b"Directory listing" not in body, folder
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


# --------------------------------------------------------------------------- a bad command line


@pytest.mark.parametrize("argv,words", [
    (["dump", "in.npz", "out", "--step", "abc"], ["--step", "'abc'", "gpu-media dump --help"]),
    (["dump", "in.npz"], ["required", "out_dir"]),
    (["demo", "out", "--format", "gif"], ["--format", "'gif'", "gpu-media demo --help"]),
    (["bogus"], ["'bogus'", "gpu-media --help"]),
    (["dump", "in.npz", "out", "--predictions", "r.json"], ["--predictions needs --coco"]),
])
def test_bad_command_line_is_one_line(tmp_path, argv, words):
    """The usage block of argparse is replaced by the one error line (status 2, as argparse's)."""
    proc = subprocess.run([sys.executable, "-m", "gpu_media.cli", *argv], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, check=False)
    assert_one_line_error(proc, *words)
    assert "usage:" not in proc.stderr
    assert os.listdir(tmp_path) == []


def test_channel_first_npz_says_how_to_give_the_layout_and_layout_flag_reads_it(tmp_path):
    nchw = tmp_path / "nchw.npz"
    np.savez(nchw, images=np.zeros((2, 3, 16, 16), np.uint8))
    line = assert_one_line_error(gpu_media_cmd("dump", nchw, tmp_path / "o", "--device", "cpu"), "channels")
    assert "--layout NCHW" in line and 'layout="NCHW"' in line
    assert not (tmp_path / "o").exists()
    proc = gpu_media_cmd("dump", nchw, tmp_path / "o", "--device", "cpu", "--layout", "NCHW")
    assert proc.returncode == 0, proc.stderr
    entry = gm_index(tmp_path / "o")["images"][0]
    assert (entry["width"], entry["height"]) == (16, 16)


def gm_index(folder):
    import json

    with open(os.path.join(folder, "images_0.index.json"), encoding="utf-8") as f:
        return json.load(f)


def test_mask_entry_with_one_underscore_names_the_pattern(tmp_path):
    bad = tmp_path / "b.npz"
    np.savez(bad, images=images(), masks_pred=np.zeros((2, 32, 32), np.uint8))
    line = assert_one_line_error(gpu_media_cmd("dump", bad, tmp_path / "o", "--device", "cpu"), "'masks_pred'")
    assert "masks__<key>" in line and "'masks__pred'" in line


# --------------------------------------------------------------------------- the disk during and after a dump


def test_disk_full_names_the_folder_and_says_nothing_was_indexed(tmp_path, capsys, monkeypatch):
    """ENOSPC at the first media file's fsync (where a full disk shows), through the real writer path."""
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as the kernel gives it: no file name

    inp = good_npz(tmp_path / "in.npz")
    out = tmp_path / "out"
    monkeypatch.setattr(os, "fsync", full)
    rc = cli.main(["dump", inp, str(out), "--device", "cpu"])
    monkeypatch.setattr(os, "fsync", real_fsync)
    err = capsys.readouterr().err
    assert rc == 2
    err = err.rsplit("\r", 1)[-1].split("\n", 1)[-1] if "\r" in err else err  # the progress bar before it
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith(f"gpu-media: error: {out}: "), err
    assert os.strerror(errno.ENOSPC) in err and "not indexed" in err
    assert not list(out.glob("*.index.json"))
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    with pytest.raises(gm.errors.DumpWriteError) as info:  # the API: a gpu_media error that is an OSError too
        monkeypatch.setattr(os, "fsync", full)
        gm.write_dump(out, images(), key="k", device="cpu")
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)


def test_viewer_failure_after_the_index_is_a_warning_and_exit_0(tmp_path, capsys):
    """index.html is a folder: the dump is complete and indexed; one warning line, exit 0; the API warns."""
    out = tmp_path / "out"
    (out / "index.html").mkdir(parents=True)
    rc = cli.main(["dump", good_npz(tmp_path / "in.npz"), str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Traceback" not in captured.err and "gpu-media: error" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.startswith("gpu-media: ")]  # (not the progress bar)
    assert len(lines) == 1 and lines[0].startswith("gpu-media: warning: "), captured.err
    assert "written and indexed" in lines[0] and "index.html was not updated" in lines[0] and "--rebuild" in lines[0]
    assert (out / "images_0.index.json").is_file()
    with pytest.warns(gm.errors.ViewerWarning, match="index.html was not updated"):
        gm.write_dump(out, images(), key="k2", device="cpu")
    assert (out / "k2_0.index.json").is_file()


def test_lock_folder_is_found_in_the_preflight(tmp_path):
    inp = good_npz(tmp_path / "in.npz")
    out = tmp_path / "out"
    (out / ".gpu-media.lock").mkdir(parents=True)
    before = tree(tmp_path)
    assert_one_line_error(gpu_media_cmd("dump", inp, out, "--device", "cpu"), ".gpu-media.lock", "is a folder")
    assert tree(tmp_path) == before  # no media file written first
