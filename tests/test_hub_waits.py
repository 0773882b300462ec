"""Bounded waits on the Hub, against real loopback sockets: a Hub that accepts connections and never
answers fails in one line naming the endpoint and HF_HUB_OFFLINE (within the read timeout); a Hub that
answers once and then goes silent fails within the no-answer budget, retries included; an endpoint
that refuses connections fails within 5 s, in one line, with no retry warnings."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


pytest_plugins = ["artifact_fixtures"]

CLI = str(Path(sys.executable).with_name("ft-artifacts"))


class SilentHub:
    """Accepts every connection and reads what is sent; answers the first `answers` requests with a
    404 and then nothing at all, holding the connections open."""

    def __init__(self, answers: int = 0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.answers, self.accepted, self.requests, self.held = answers, 0, 0, []
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn) -> None:
        try:
            while data := conn.recv(65536):
                self.requests += data.count(b" HTTP/1.1\r\n")
                if self.answers > 0:
                    self.answers -= 1
                    body = b'{"error": "Repository not found"}'
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nX-Error-Code: "
                                 b"RepoNotFound\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent():
    hub = SilentHub()
    yield hub
    hub.close()


def closed_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there once closed


def run(args: list[str], endpoint: str, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    from artifact_fixtures import subprocess_env

    environment = subprocess_env(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), HF_TOKEN="hf_x" * 8,
                                 HF_HUB_DISABLE_XET="1", **env)
    environment.pop("HF_HUB_OFFLINE")
    started = time.monotonic()
    proc = subprocess.run(args, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - started


def assert_one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Retry" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_load_from_a_hub_that_never_answers_fails_within_the_read_timeout(silent, tmp_path) -> None:
    proc, seconds = run([CLI, "info", "org/name"], silent.endpoint, tmp_path, FT_ARTIFACTS_HUB_READ_TIMEOUT="1.5")
    line = assert_one_line(proc, silent.endpoint, "did not answer within 1.5 s", "HF_HUB_OFFLINE", "local artifact folder")
    assert seconds < 1.5 + 12, (seconds, line)  # the timeout, plus the interpreter's start
    assert silent.requests == 1  # one probe, no retries


def test_push_to_a_hub_that_never_answers_fails_within_the_read_timeout(silent, tiny_artifact, tmp_path) -> None:
    proc, seconds = run([CLI, "push", str(tiny_artifact), "--repo-id", "org/name"], silent.endpoint, tmp_path,
                        FT_ARTIFACTS_HUB_READ_TIMEOUT="1.5")
    assert_one_line(proc, silent.endpoint, "did not answer within 1.5 s", "HF_HUB_OFFLINE")
    assert seconds < 1.5 + 12 and silent.requests == 1


@pytest.mark.parametrize("command", ["info", "push"])
def test_a_hub_that_answers_once_then_goes_silent_fails_within_the_budget(tiny_artifact, tmp_path, command) -> None:
    hub = SilentHub(answers=1)  # the probe is answered, every later request hangs (and is retried)
    try:
        args = [CLI, "info", "org/name"] if command == "info" else [CLI, "push", str(tiny_artifact), "--repo-id", "org/name"]
        proc, seconds = run(args, hub.endpoint, tmp_path, FT_ARTIFACTS_HUB_READ_TIMEOUT="1",
                            FT_ARTIFACTS_HUB_WAIT="3")
    finally:
        hub.close()
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and hub.endpoint in lines[0] and "HF_HUB_OFFLINE" in lines[0], proc.stderr
    # a request that times out is either retried until the budget is spent, or reported at once
    assert "sent nothing for 3 s" in lines[0] or "did not answer in time" in lines[0], lines[0]
    assert seconds < 3 + 1 + 8 + 12, seconds  # the budget, one request's timeout, one backoff sleep, the start
    assert hub.requests >= 2  # the probe was answered: the failure came later, within the budget


TIMED = """
import json, sys, time
import ft_artifacts
from ft_artifacts import publish
from ft_artifacts.errors import FTError
call = {"load": lambda: ft_artifacts.load("org/name"),
        "push": lambda: publish.push_folder(sys.argv[2], "org/name")}[sys.argv[1]]
started = time.monotonic()
try:
    call()
except FTError as exc:
    print(json.dumps({"seconds": time.monotonic() - started, "error": str(exc)}))
"""


@pytest.mark.parametrize("command", ["load", "push"])
def test_an_unreachable_hub_fails_within_5_seconds(tiny_artifact, tmp_path, command) -> None:
    proc, _ = run([sys.executable, "-c", TIMED, command, str(tiny_artifact)], closed_endpoint(), tmp_path)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["seconds"] < 5, out
    assert "cannot reach the Hub" in out["error"] and "HF_HUB_OFFLINE" in out["error"] and "\n" not in out["error"]
    assert "local artifact folder" in out["error"]
    assert "Retry" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("command", ["info", "query", "push"])
def test_an_unreachable_hub_is_one_line_from_the_cli(tiny_artifact, tmp_path, command) -> None:
    args = {"info": [CLI, "info", "org/name"], "query": [CLI, "query", "org/name", "--word", "crowd"],
            "push": [CLI, "push", str(tiny_artifact), "--repo-id", "org/name"]}[command]
    proc, _ = run(args, closed_endpoint(), tmp_path)
    assert_one_line(proc, "cannot reach the Hub", "HF_HUB_OFFLINE", "local artifact folder")


def test_the_default_waits_fit_in_60_seconds(monkeypatch) -> None:
    from ft_artifacts import hub

    for name in ("FT_ARTIFACTS_HUB_CONNECT_TIMEOUT", "FT_ARTIFACTS_HUB_READ_TIMEOUT", "FT_ARTIFACTS_HUB_WAIT"):
        monkeypatch.delenv(name, raising=False)
    # a silent Hub: the probe's connect plus read; a Hub that goes silent later: the budget plus one request
    assert hub.connect_timeout() + hub.read_timeout() < 60
    assert hub.wait_seconds() + hub.read_timeout() < 60 + 8  # plus at most one of huggingface_hub's backoff sleeps
    monkeypatch.setenv("FT_ARTIFACTS_HUB_READ_TIMEOUT", "soon")
    with pytest.raises(Exception, match="FT_ARTIFACTS_HUB_READ_TIMEOUT='soon' is not a number"):
        hub.read_timeout()


@pytest.mark.slow
def test_with_default_settings_a_silent_hub_fails_within_60_seconds(silent, tmp_path) -> None:
    proc, seconds = run([CLI, "query", "org/name", "--word", "crowd"], silent.endpoint, tmp_path)
    assert_one_line(proc, silent.endpoint, "HF_HUB_OFFLINE")
    assert seconds < 60


from hubserver import hub_server  # noqa: E402,F401 - pytest fixture
from test_publish import REPO_ID, artifact, client  # noqa: E402,F401 - pytest fixtures


def test_an_unreachable_hub_falls_back_to_the_cached_copy_with_one_warning(client, artifact) -> None:  # noqa: F811
    client.push(artifact)
    snapshot = client.call("download_artifact", REPO_ID)["result"]
    seen = len(client.hub.requests)
    proc = subprocess.run([sys.executable, "-c", "import logging, sys\nlogging.basicConfig()\n"
                           "from ft_artifacts.publish import download_artifact\n"
                           f"print(download_artifact({REPO_ID!r}))"],
                          env={**client.env, "HF_ENDPOINT": closed_endpoint()}, cwd=client.cwd, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == snapshot and len(client.hub.requests) == seen
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "cannot reach the Hub" in warnings[0] and "using the cached copy" in warnings[0]
