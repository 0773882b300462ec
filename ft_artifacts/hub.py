"""Bounded waits on the Hugging Face Hub: every request huggingface_hub makes (through its shared HTTP
client) gets connect and read timeouts, and an operation (a push, a download) gives up once the Hub has
sent nothing for `wait_seconds()`, retries included. Before an operation, one quick probe tells an
unreachable Hub (connection refused, no network: a second or two) and a Hub that accepts connections
but never answers (the read timeout) from a working one, each in one line naming the endpoint,
HF_HUB_OFFLINE and local folders.

Settings (seconds, environment): FT_ARTIFACTS_HUB_CONNECT_TIMEOUT (3), FT_ARTIFACTS_HUB_READ_TIMEOUT (20),
FT_ARTIFACTS_HUB_WAIT (45): the longest time an operation waits with no answer from the Hub.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from urllib.parse import quote

from .errors import ArtifactError, FTError

logger = logging.getLogger(__name__)

_DEFAULTS = {"FT_ARTIFACTS_HUB_CONNECT_TIMEOUT": 3.0, "FT_ARTIFACTS_HUB_READ_TIMEOUT": 20.0,
             "FT_ARTIFACTS_HUB_WAIT": 45.0}
OFFLINE_HINT = "set HF_HUB_OFFLINE=1 to use a cached copy, or pass a local artifact folder"


def _seconds(name: str) -> float:
    try:
        value = float(os.environ.get(name, "") or _DEFAULTS[name])
    except ValueError:
        raise FTError(f"{name}={os.environ[name]!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise FTError(f"{name}={value:g} must be between 0 and 600 seconds")
    return value


def connect_timeout() -> float:
    return _seconds("FT_ARTIFACTS_HUB_CONNECT_TIMEOUT")


def read_timeout() -> float:
    return _seconds("FT_ARTIFACTS_HUB_READ_TIMEOUT")


def wait_seconds() -> float:
    return _seconds("FT_ARTIFACTS_HUB_WAIT")


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


class _Budget:
    """The running operation's deadline: pushed forward by every answer from the Hub."""

    lock = threading.Lock()
    deadline: float | None = None
    error: type[FTError] = ArtifactError
    what = ""


def _on_request(request) -> None:
    """Each request's timeouts: the settings', cut to what the operation has left."""
    connect, read = connect_timeout(), read_timeout()
    with _Budget.lock:
        deadline, error, what = _Budget.deadline, _Budget.error, _Budget.what
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise error(f"the Hub at {endpoint()} sent nothing for {wait_seconds():g} s while {what}: retry later, "
                        f"check HF_ENDPOINT, or {OFFLINE_HINT}")
        connect, read = min(connect, left), min(read, left)
    request.extensions["timeout"] = {"connect": connect, "read": read, "write": max(read, 60.0), "pool": connect}


def _on_response(_response) -> None:
    with _Budget.lock:
        if _Budget.deadline is not None:
            _Budget.deadline = time.monotonic() + wait_seconds()


def _client():
    import httpx2
    from huggingface_hub.utils._http import hf_request_event_hook

    return httpx2.Client(event_hooks={"request": [hf_request_event_hook, _on_request], "response": [_on_response]},
                         follow_redirects=True, timeout=httpx2.Timeout(read_timeout(), connect=connect_timeout()))


def install() -> None:
    """Give huggingface_hub's shared client the bounded timeouts, unless the caller set a client factory
    of their own (then theirs is kept)."""
    from huggingface_hub.utils import _http

    if _http._GLOBAL_CLIENT_FACTORY is _http.default_client_factory:
        _http.set_client_factory(_client)


class _QuietRetries(logging.Filter):
    """huggingface_hub's retry chatter ("'timed out' thrown while requesting ...", "Retrying in 1s [Retry
    1/5]"), which the operation's own one-line outcome replaces: kept at debug level only."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno == logging.WARNING and ("thrown while requesting" in message or message.startswith(
                ("Retrying in", "Rate limited"))):
            logger.debug("huggingface_hub: %s", message)
            return False
        return True


@contextmanager
def bounded(what: str, error: type[FTError] = ArtifactError):
    """Run one Hub operation under the no-answer budget; `error` is raised when it runs out."""
    install()
    http_logger, quiet = logging.getLogger("huggingface_hub.utils._http"), _QuietRetries()
    http_logger.addFilter(quiet)
    with _Budget.lock:
        _Budget.deadline, _Budget.error, _Budget.what = time.monotonic() + wait_seconds(), error, what
    try:
        yield
    finally:
        with _Budget.lock:
            _Budget.deadline = None
        http_logger.removeFilter(quiet)


def probe(repo_id: str, error: type[FTError] = ArtifactError) -> None:
    """Fail at once, in one line, when the Hub cannot be reached or does not answer; any HTTP answer
    (404 and 401 included) means it is there. Does nothing in offline mode (HF_HUB_OFFLINE)."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.is_offline_mode():
        return
    install()
    url = f"{endpoint()}/api/datasets/{quote(repo_id, safe='/')}"
    read = read_timeout()
    try:
        get_session().get(url, timeout=httpx2.Timeout(read, connect=connect_timeout()), follow_redirects=False)
    except httpx2.ReadTimeout as exc:
        raise error(f"the Hub at {endpoint()} accepted the connection but did not answer within {read:g} s "
                    f"(for {repo_id}): retry later, check HF_ENDPOINT, or {OFFLINE_HINT}") from exc
    except FTError:
        raise
    except Exception as exc:  # noqa: BLE001 - httpx's transport errors, proxy errors, invalid URLs
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise error(f"cannot reach the Hub at {endpoint()} for {repo_id} ({reason}): check your network, proxy or "
                    f"HF_ENDPOINT; {OFFLINE_HINT}") from exc
