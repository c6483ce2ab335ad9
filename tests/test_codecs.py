"""gpu_media.codecs: one codec table, read by every place that knows about formats.

The table is consistent (names, aliases, an encoder for every registered backend
that resolves to a function); the CLI's ``--format`` choices, ``encode.FILE_TYPES``
and the nvImageCodec wrapper's names come from it; and every codec round-trips at
every channel count it allows through the CPU backend, with the table's flags
(lossless, alpha, quality, compression level) matching what the encoders do.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import warnings

import numpy as np
import pytest
from PIL import Image

import cpu_fallback
import gpu_media as gm
from gpu_media import backend as B
from gpu_media import cli, codecs
from gpu_media.cuda import nvimgcodec as ne
from gpu_media.encode import FILE_TYPES, check_format

MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def decode(data: bytes):
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.format, im.mode, np.asarray(im)


def smooth(n, h, w, c, seed=0) -> np.ndarray:
    """uint8 (n,h,w,c) gradients plus mild noise: what JPEG is for."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (yy * 255 // max(h - 1, 1) + xx * 128 // max(w - 1, 1))[None, :, :, None] + np.arange(c) * 40
    return np.clip(base + rng.integers(-4, 5, (n, h, w, c)), 0, 255).astype(np.uint8)


def test_the_table():
    names = [c.name for c in codecs.CODECS]
    spellings = [s for c in codecs.CODECS for s in c.spellings]
    assert len(set(spellings)) == len(spellings), "a spelling names two codecs"
    assert names == ["png", "jpg", "bmp"]
    assert codecs.FILE_TYPES == FILE_TYPES == ("png", "jpg", "jpeg", "bmp")  # wandb.Image's, in its order
    for c in codecs.CODECS:
        assert set(c.channels) <= {1, 3, 4} and 1 in c.channels and 3 in c.channels
        assert (4 in c.channels) == c.alpha
        assert "tiff" not in c.spellings


def test_aliases_and_unknown_names():
    assert codecs.lookup("jpeg") is codecs.lookup("jpg")
    assert codecs.lookup("jpeg").name == "jpg" and check_format("jpeg", 75) == "jpg"
    for bad in ("gif", "tiff", "JPG", "webp", None, 3):
        with pytest.raises(gm.MediaError) as info:
            codecs.lookup(bad)
        assert str(info.value) == f"file_type must be one of ['png', 'jpg', 'jpeg', 'bmp'], got {bad!r}"
        assert info.value.item == bad


def _defines(module: str, function: str) -> bool:
    """Whether ``module``'s source defines ``function`` at top level (without importing it)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body)


@pytest.mark.parametrize("codec", codecs.CODECS, ids=lambda c: c.name)
def test_every_codec_has_an_encoder_on_every_backend(codec):
    assert set(codec.encoders) == set(B.backends()), "an encoder per registered backend"
    for backend, ref in codec.encoders.items():
        module, _, function = ref.partition(":")
        assert function, f"{ref!r} is not 'module:function'"
        assert _defines(module, function), f"{ref} is not defined"
        if backend == "gpu" and not gm.gpu_available():
            continue  # importing the CuPy backend needs CuPy; its source was checked above
        fn = codecs.encoder(codec.name, backend)
        assert callable(fn) and fn.__module__ == module and fn.__name__ == function
    assert codecs.encoder(codec.name, "cpu").__module__ == "cpu_fallback.encode"
    with pytest.raises(KeyError, match="no encoder for backend 'nope'"):
        codecs.encoder(codec.name, "nope")


def test_cli_format_choices_are_the_table(monkeypatch, capsys, tmp_path):
    seen = []
    monkeypatch.setattr(cli, "run_dump", lambda *a, **k: seen.append(k["file_type"]))
    for spelling in codecs.FILE_TYPES:
        assert cli.main(["demo", str(tmp_path), "--format", spelling]) == 0
    assert tuple(seen) == codecs.FILE_TYPES
    for bad in ("gif", "tiff"):
        with pytest.raises(SystemExit):
            cli.main(["demo", str(tmp_path), "--format", bad])
        err = capsys.readouterr().err
        assert "invalid choice" in err and all(s in err for s in codecs.FILE_TYPES)


def test_nvimgcodec_wrapper_names_come_from_the_table():
    assert ne.CODECS == {s: c.nvimgcodec_name for c in codecs.CODECS for s in c.spellings}
    assert ne.CHANNELS == {c.nvimgcodec_name: c.channels for c in codecs.CODECS}
    assert list(ne.CODECS) == list(codecs.FILE_TYPES) and "tiff" not in ne.CODECS
    for bad in ("tiff", "gif"):
        with pytest.raises(gm.MediaError, match=r"^file_type must be one of \['png', 'jpg', 'jpeg', 'bmp'\]"):
            ne.encode_device(np.zeros((1, 4, 4, 3), np.uint8), 75, bad, device_id=ne.CPU_ONLY)


@pytest.mark.parametrize("codec", codecs.CODECS, ids=lambda c: c.name)
def test_round_trip_per_channel_count_on_the_cpu(codec):
    for c in codec.channels:
        x = smooth(3, 17, 23, c, seed=c)
        for spelling in codec.spellings:
            out = cpu_fallback.encode(x, spelling, 90)
            assert out == cpu_fallback.encode(x, codec.name, 90)  # aliases are the same codec
        assert out == gm.encode(x, file_type=codec.name, quality=90, device="cpu")
        for a, data in zip(x, out):
            fmt, mode, d = decode(data)
            assert (fmt, mode, d.shape[:2]) == (codec.label, MODES[c], (17, 23))
            d = d.reshape(a.shape)
            if codec.lossless:
                np.testing.assert_array_equal(d, a)
            else:
                assert np.abs(d.astype(int) - a).mean() < 3.0


@pytest.mark.parametrize("codec", codecs.CODECS, ids=lambda c: c.name)
def test_the_flags_say_what_the_encoders_do(codec):
    x = smooth(2, 32, 40, 3)
    noisy = np.random.default_rng(1).integers(0, 256, (2, 32, 40, 3), dtype=np.uint8)
    low_q, high_q = cpu_fallback.encode(x, codec.name, 20), cpu_fallback.encode(x, codec.name, 95)
    assert (low_q != high_q) == codec.uses_quality
    lvl0, lvl9 = cpu_fallback.encode(noisy, codec.name, 75, 0), cpu_fallback.encode(noisy, codec.name, 75, 9)
    assert (lvl0 != lvl9) == codec.uses_compression_level
    rgba = smooth(2, 8, 8, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = gm.encode(rgba, file_type=codec.name, device="cpu")
    modes = {decode(b)[1] for b in out}
    if codec.alpha:
        assert modes == {"RGBA"} and not caught
    else:
        assert modes == {"RGB"}
        assert [str(w.message) for w in caught] == [
            f"{codec.label} does not support transparency: the alpha channel is dropped"]
