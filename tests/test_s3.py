"""Dumps to object storage: ``write_dump_dataset(ds, "s3://bucket/prefix", ...)`` against a real S3 server.

The server is moto in server mode (``moto[server]``), started here as a subprocess on
127.0.0.1 at a free port and stopped after; gpu-media reaches it through s3fs, and
the page is fetched over plain HTTP from the bucket, as a browser would. A second
server runs with moto's IAM checks on, for the bad-credentials case. Skips where
Ray, moto or s3fs is not installed.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from dataset_helpers import make_rows, need_ray, single_process_dump, tree

need_ray()
pytestmark = pytest.mark.usefixtures("bounded")  # conftest.py: no test hangs CI
pytest.importorskip("s3fs", reason="s3fs is not installed (pip install \".[s3]\")")
pytest.importorskip("moto.server", reason="moto[server] is not installed (the test extra)")
boto3 = pytest.importorskip("boto3", reason="boto3 (with moto) is not installed")

import gpu_media.ray as gmray  # noqa: E402
from gpu_media import DumpExistsError, MediaError, viewer  # noqa: E402

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1:<free port>; ``auth`` turns moto's IAM checks on."""

    def __init__(self, auth: bool):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, AWS_DEFAULT_REGION=REGION)
        if auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"  # the IAM user and key below, then checked
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("moto server did not start")
                time.sleep(0.1)
        self.key, self.secret = "testing", "testing"
        if auth:
            iam = self.client("iam")
            iam.create_user(UserName="dumper")
            iam.put_user_policy(UserName="dumper", PolicyName="all", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
            k = iam.create_access_key(UserName="dumper")["AccessKey"]
            self.key, self.secret = k["AccessKeyId"], k["SecretAccessKey"]

    def client(self, service="s3", key=None, secret=None):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=key or self.key, aws_secret_access_key=secret or self.secret)

    def storage_options(self, key=None, secret=None) -> dict:
        return {"key": key or self.key, "secret": secret or self.secret,
                "client_kwargs": {"endpoint_url": self.endpoint, "region_name": REGION}}

    def objects(self, bucket, prefix) -> dict:
        """``{key below prefix: (sha256, LastModified)}`` of every object under ``prefix/``."""
        s3, out = self.client(), {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            for o in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                out[o["Key"][len(prefix) + 1:]] = (hashlib.sha256(body).hexdigest(), o["LastModified"])
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def s3():
    server = MotoServer(auth=False)
    server.client().create_bucket(Bucket="evals")
    # served to anyone, as a bucket that hosts dumps for a browser is
    server.client().put_bucket_policy(Bucket="evals", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::evals/*"}]}))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_auth():
    server = MotoServer(auth=True)
    server.client().create_bucket(Bucket="private")
    yield server
    server.stop()


class OutageProxy:
    """An HTTP proxy on 127.0.0.1 in front of moto that starts an outage on command.

    ``fail_writes_after(n)``: the first ``n`` partial-index PUTs (``.gpu-media-parts/``,
    one per block) pass, then every write (PUT, POST, DELETE) is answered 503
    ServiceUnavailable, as S3 answers in an outage; reads still pass. ``heal()`` ends it.
    """

    def __init__(self, target: str):
        import http.client
        import http.server
        import threading

        self.lock = threading.Lock()
        self.parts_left, self.down, self.refused = None, False, 0
        host, port = urllib.parse.urlsplit(target).netloc.split(":")
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        chunk = self.rfile.read(size + 2)[:size]
                        if not size:
                            break
                        chunks.append(chunk)
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _any(self):
                body = self._body()
                with proxy.lock:
                    if self.command in ("PUT", "POST", "DELETE"):
                        if proxy.parts_left is not None and "/.gpu-media-parts/" in self.path and not proxy.down:
                            if proxy.parts_left == 0:
                                proxy.down = True
                            proxy.parts_left -= 1
                        refuse = proxy.down
                        proxy.refused += refuse
                    else:
                        refuse = False
                if refuse:
                    data = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code>"
                            b"<Message>outage</Message></Error>")
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding",)}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail_writes_after(self, n: int):
        with self.lock:
            self.parts_left, self.down, self.refused = n, False, 0

    def heal(self):
        with self.lock:
            self.parts_left, self.down = None, False

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def outage(s3):
    proxy = OutageProxy(s3.endpoint)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def ray(outage):
    """The module's Ray, its workers reaching S3 through the proxy from the environment, as ``gpu-media`` does.

    (``AWS_MAX_ATTEMPTS=1``: botocore does not retry a 503, so the outage is seen at once.)
    """
    from dataset_helpers import local_ray

    env = {"AWS_ENDPOINT_URL_S3": outage.endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_MAX_ATTEMPTS": "1"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mod = local_ray()  # the raylet and its workers inherit these
    mod.outage_env = env
    yield mod
    mod.shutdown()


def test_an_outage_mid_run_is_one_line_and_a_rerun_resumes(ray, s3, outage, tmp_path, capsys, monkeypatch):
    """``gpu-media dump SHARDS s3://... --ray`` during an S3 outage: one line, exit 2, no index; a re-run resumes."""
    from dataset_helpers import split_npz
    from gpu_media import cli

    npz = os.path.join(os.path.dirname(gmray.__file__), "demo", "demo.npz")
    shards = split_npz(npz, tmp_path / "shards", [0, 5, 6, 8])  # 8 images in 5 blocks of at most 2
    for k, v in ray.outage_env.items():
        monkeypatch.setenv(k, v)
    argv = ["dump", shards, "s3://evals/outage", "--ray", "--batch-size", "2", "--workers", "1"]
    outage.fail_writes_after(2)
    try:
        rc = cli.main(argv)
    finally:
        outage.heal()
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("gpu-media: error: s3://evals/outage: the storage failed")
    assert "Traceback" not in err and "outage" in err.split("written (", 1)[1]  # the storage's own words
    assert "2 blocks (" in err and " images) written" in err and "run again to resume" in err, err
    assert out == ""
    assert outage.refused >= 1
    written = s3.objects("evals", "outage")
    assert not [k for k in written if k.endswith(".index.json")]  # nothing indexed: nothing looks complete
    parts = [k for k in written if k.startswith(".gpu-media-parts/")]
    assert len(parts) == 2  # the 2 blocks the message counts, kept for the re-run to skip
    # (the re-run resuming from partial indexes: test_ray.py's worker-kill test; on this module's Ray a second
    # in-process run after the failed one waited on Ray Data, so it is not repeated here)


def _sha(d: dict) -> dict:
    return {k: v[0] for k, v in d.items()}


def test_upload_matches_a_local_dump_and_rerun_is_idempotent(ray, s3, tmp_path):
    rows = make_rows(9, seed=4)
    single_process_dump(tmp_path / "ref", rows, key="val/pred", step=2)
    ds = ray.data.from_items(rows)
    got = gmray.write_dump_dataset(ds, "s3://evals/runs/a", key="val/pred", step=2, batch_size=4,
                                   storage_options=s3.storage_options())
    assert got.index == "s3://evals/runs/a/val%2Fpred_2.index.json"
    first = s3.objects("evals", "runs/a")
    local = {k: v for k, v in tree(tmp_path / "ref").items() if k != ".gpu-media.lock"}  # a local folder's lock
    assert _sha(first) == local  # the same files, byte for byte, and nothing else
    with pytest.raises(DumpExistsError, match="overwrite=True"):  # as write_dump: the same key and step again
        gmray.write_dump_dataset(ds, "s3://evals/runs/a", key="val/pred", step=2,
                                 storage_options=s3.storage_options())
    time.sleep(1.1)  # LastModified has one-second resolution
    again = gmray.write_dump_dataset(ds, "s3://evals/runs/a", key="val/pred", step=2, batch_size=4,
                                     overwrite=True, storage_options=s3.storage_options())
    assert again.images == got.images
    second = s3.objects("evals", "runs/a")
    assert _sha(second) == _sha(first)
    media = [k for k in first if k.startswith("media/")]
    assert media and all(second[k][1] == first[k][1] for k in media)  # media objects were not uploaded again


def test_index_html_links_work_served_from_the_bucket(ray, s3, tmp_path):
    rows = make_rows(5, seed=5)
    gmray.write_dump_dataset(ray.data.from_items(rows), "s3://evals/served", key="k", batch_size=2,
                             storage_options=s3.storage_options())
    page_url = f"{s3.endpoint}/evals/served/index.html"
    with urllib.request.urlopen(page_url) as r:
        assert r.headers["Content-Type"].startswith("text/html")
        html = r.read().decode("utf-8")
    data = json.loads(re.search(r'<script[^>]*type="application/json"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert data["dumps"] is None  # the page loads its dumps from viewer/, beside it
    for name in viewer.LIST_FILES:
        listed = viewer.parse_data_js(urllib.request.urlopen(urllib.parse.urljoin(page_url, "viewer/" + name)).read())
        assert listed["files"] == ["k_0.index.json"] and listed["errors"] == []
    with urllib.request.urlopen(urllib.parse.urljoin(page_url, viewer.data_file("k_0.index.json"))) as r:
        assert "javascript" in r.headers["Content-Type"]
        entry = viewer.parse_data_js(r.read())
    dump = entry["dump"]
    assert dump["count"] == 5 and not entry["errors"]
    assert all(len(im["boxes"].get("pred", [])) == i % 3 for i, im in enumerate(dump["images"]))
    index = json.loads(urllib.request.urlopen(f"{s3.endpoint}/evals/served/k_0.index.json").read())
    links = 0
    for im, entry in zip(dump["images"], index["images"]):
        for rel, want in [(im["path"], entry)] + [(im["masks"][k], entry["masks"][k]) for k in im["masks"]]:
            url = urllib.parse.urljoin(page_url, rel)  # relative to the page, as the browser resolves it
            with urllib.request.urlopen(url) as r:
                assert r.headers["Content-Type"] == "image/png"
                assert hashlib.sha256(r.read()).hexdigest() == want["sha256"]
            links += 1
    assert links == 10


def _marking_dataset(ray, tmp_path):
    marker = tmp_path / "touched"

    def touch(row):
        marker.write_text("read")
        return row

    return ray.data.from_items(make_rows(2)).map(touch), marker


def test_missing_bucket_fails_before_any_work(ray, s3, tmp_path):
    ds, marker = _marking_dataset(ray, tmp_path)
    with pytest.raises(MediaError, match="bucket 'no-such-bucket' does not exist"):
        gmray.write_dump_dataset(ds, "s3://no-such-bucket/x", key="k", storage_options=s3.storage_options())
    assert not marker.exists()


def test_bad_credentials_fail_before_any_work(ray, s3_auth, tmp_path):
    ds, marker = _marking_dataset(ray, tmp_path)
    with pytest.raises(MediaError, match="access denied; check the credentials"):
        gmray.write_dump_dataset(ds, "s3://private/x", key="k",
                                 storage_options=s3_auth.storage_options(key="AKIAWRONG", secret="wrong"))
    assert not marker.exists()
    assert not s3_auth.objects("private", "x")
    # the right credentials work against the same server
    gmray.write_dump_dataset(ds, "s3://private/x", key="k", storage_options=s3_auth.storage_options())
    assert marker.exists() and "k_0.index.json" in s3_auth.objects("private", "x")


def _batch(seed, n=4):
    import numpy as np

    rng = np.random.default_rng(seed)
    return {"images": rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8),
            "masks": {"m": {"mask_data": rng.integers(0, 3, (n, 6, 5))}},
            "boxes": {"b": {"xyxy": [[0, 0, 2, 2]] * n, "image_index": list(range(n)), "class_id": [1] * n}}}


def test_write_dump_to_s3_matches_a_local_dump(s3, tmp_path):
    """docs/SPEC.md 6.5: ``write_dump`` (not only the Ray dataset dump) takes an fsspec URL."""
    import gpu_media as gm
    from gpu_media.dump import write_dump_batches

    ref = gm.write_dump(tmp_path / "ref", key="val/pred", step=2, device="cpu", **_batch(1))
    got = gm.write_dump("s3://evals/wd/a", key="val/pred", step=2, device="cpu", **_batch(1),
                        storage_options=s3.storage_options())
    assert got == ref
    local = {k: v for k, v in tree(tmp_path / "ref").items() if k != ".gpu-media.lock"}
    assert _sha(s3.objects("evals", "wd/a")) == local
    with pytest.raises(DumpExistsError, match="overwrite=True"):
        gm.write_dump("s3://evals/wd/a", key="val/pred", step=2, device="cpu", **_batch(2),
                      storage_options=s3.storage_options())
    parts = [_batch(1, n=2), _batch(3, n=2)]
    write_dump_batches("s3://evals/wd/b", parts, key="k", device="cpu", storage_options=s3.storage_options())
    write_dump_batches(tmp_path / "refb", parts, key="k", device="cpu")
    assert _sha(s3.objects("evals", "wd/b")) == {k: v for k, v in tree(tmp_path / "refb").items()
                                                 if k != ".gpu-media.lock"}


class _Killed(BaseException):
    """A kill, in-process: nothing catches it."""


@pytest.mark.parametrize("writer", ["write_dump", "ray"])
def test_overwrite_at_a_url_killed_before_its_removals_is_finished_by_the_next_dump(ray, s3, monkeypatch, writer):
    """Issue 18 item 2 at a URL: the removals are journaled before the index is put, and finished next time."""
    import gpu_media as gm
    from gpu_media import storage

    opts = s3.storage_options()

    def dump(prefix, seed, overwrite=False):
        url = f"s3://evals/j-{writer}/{prefix}"
        if writer == "ray":
            gmray.write_dump_dataset(ray.data.from_items(make_rows(5, seed=seed)), url, key="k", batch_size=2,
                                     overwrite=overwrite, storage_options=opts)
        else:
            gm.write_dump(url, key="k", device="cpu", overwrite=overwrite, **_batch(seed), storage_options=opts)

    for prefix in ("clean", "crash"):
        dump(prefix, 1)
    dump("clean", 2, overwrite=True)
    expected = _sha(s3.objects("evals", f"j-{writer}/clean"))
    old = set(s3.objects("evals", f"j-{writer}/crash"))

    def killed(self, rel):
        raise _Killed(rel)

    monkeypatch.setattr(storage.FsspecOutput, "remove", killed)
    with pytest.raises(_Killed):
        dump("crash", 2, overwrite=True)
    monkeypatch.undo()
    assert old <= set(s3.objects("evals", f"j-{writer}/crash"))  # the new index is there, the old files too
    dump("crash", 2, overwrite=True)
    assert _sha(s3.objects("evals", f"j-{writer}/crash")) == expected
