"""Is the network there? Asked once per process with a short timeout, before any download starts.

Why: a GPU node without network (or behind a proxy that never answers) made every download place
wait its own 30 s read timeout, and the Hugging Face client retried on top; a user waited about half a
minute for a message. Here one HEAD request per server (through the proxy the environment names, as
urllib and huggingface_hub use it) must answer within ``CONNECT_TIMEOUT_S``. A timeout or an
unreachable network marks the whole network down for the rest of the process, so later places are
skipped at once; a refused connection or a name that does not resolve marks only that server.
Nothing is created on disk before the answer (no lock file, no folder).
"""

from __future__ import annotations

import errno
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 4.0
_WHOLE_NETWORK = "*"
_down: dict[str, str] = {}  # route ("*" for all) -> why it is not reachable
_up: set[str] = set()


class NetworkUnreachable(OSError):
    """No answer from a download server (or the proxy in front of it) within the short timeout."""


def _route(url: str) -> str:
    """Where a request to ``url`` really goes: the proxy for its scheme, else its host and port."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or ""):
        return f"proxy {proxies[parts.scheme]}"
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def network_down() -> str:
    """Why the whole network was found unreachable in this process, or ''."""
    return _down.get(_WHOLE_NETWORK, "")


def _whole_network_failure(reason: object) -> bool:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ETIMEDOUT)


def check_reachable(url: str) -> None:
    """Return when the server of ``url`` answers an HTTP request (any status); raise NetworkUnreachable
    at once when this process already found it (or the whole network) unreachable, else after one try."""
    route = _route(url)
    known = _down.get(_WHOLE_NETWORK) or _down.get(route)
    if known:
        raise NetworkUnreachable(known)
    if route in _up:
        return
    parts = urlsplit(url)
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/", method="HEAD")
    try:
        with urllib.request.build_opener().open(request, timeout=CONNECT_TIMEOUT_S):  # proxies as set now
            pass
    except urllib.error.HTTPError:
        pass  # an answer, whatever its status: the server is there
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        whole = _whole_network_failure(reason)
        timed_out = isinstance(reason, (TimeoutError, socket.timeout))
        why = (f"no answer from {route} within {CONNECT_TIMEOUT_S:g} s" if timed_out
               else f"{route}: {' '.join(str(reason).split())[:120]}")
        _down[_WHOLE_NETWORK if whole else route] = why
        raise NetworkUnreachable(why) from None
    _up.add(route)


def forget() -> None:
    """Ask again next time (tests; a long-lived process whose network came back)."""
    _down.clear()
    _up.clear()
