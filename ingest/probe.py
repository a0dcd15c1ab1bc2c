"""Why a camera cannot be read: a cheap look at its address that names the problem.

OpenCV's capture says only "not opened", for a camera that is down as for a mistyped URL. An
operator needs to know which: a camera that refuses connections or times out will be back (retry
it, and reconnect within seconds when it is), while a 404, a refused password, an unknown host or
a web page instead of a video will not fix itself (report the camera as misconfigured and stop
hammering it). ``diagnose`` asks the server the way a player would (an RTSP DESCRIBE, an HTTP
GET read up to its headers) and classifies the answer. A reader repeats it every second while a
dropped camera is away, to reconnect as soon as it is back.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_RTSP_PORT = 554
_VIDEO_TYPES = ("video/", "multipart/x-mixed-replace", "application/octet-stream", "application/vnd.apple.mpegurl",
                "application/x-mpegurl", "image/jpeg")


def without_credentials(uri: str) -> str:
    """The stream's address as packs, logs and status pages may show it: user name and password removed."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))


@dataclass(frozen=True)
class Diagnosis:
    """What the camera's address answered. ``misconfigured``: retrying will not help until someone
    fixes the config or the camera (wrong path, wrong password, unknown host, not a video)."""

    ok: bool
    reason: str | None = None
    misconfigured: bool = False


_UP = Diagnosis(True)


def _transient(reason: str) -> Diagnosis:
    return Diagnosis(False, reason, False)


def _wrong(reason: str) -> Diagnosis:
    return Diagnosis(False, reason, True)


def _connection_problem(exc: OSError, host: str, port: int) -> Diagnosis:
    if isinstance(exc, socket.gaierror):
        return _wrong(f"unknown host {host!r}")
    if isinstance(exc, ConnectionRefusedError):
        return _transient(f"connection refused by {host}:{port}")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return _transient(f"no answer from {host}:{port} (timed out)")
    if isinstance(exc, ssl.SSLError):
        return _wrong(f"TLS failed with {host}:{port}: {exc.reason or exc}")
    return _transient(f"connection to {host}:{port} failed: {exc.strerror or exc}")


def _port(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    default = {"rtsp": _RTSP_PORT, "rtsps": 322, "http": 80, "https": 443}.get(parts.scheme, 0)
    return parts.hostname or "", parts.port or default


def diagnose(uri: str, timeout_s: float = 3.0) -> Diagnosis:
    """Ask the address what a player would ask and say what is wrong, if anything."""
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    if not scheme:
        return _UP if Path(uri).exists() else _wrong(f"no such file {uri}")
    if scheme in ("rtsp", "rtsps"):
        return _diagnose_rtsp(uri, timeout_s)
    if scheme in ("http", "https"):
        return _diagnose_http(uri, timeout_s)
    return _wrong(f"unsupported address scheme {scheme!r} (use rtsp://, http:// or https://)")


def _diagnose_http(uri: str, timeout_s: float) -> Diagnosis:
    parts = urlsplit(uri)
    host, port = _port(uri)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(host, port, timeout=timeout_s)
    headers = {"Authorization": _basic(parts.username, parts.password)} if parts.username is not None else {}
    try:
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), headers=headers)
        response = connection.getresponse()  # headers only: the body (the video) is never read
        status, reason, content_type = response.status, response.reason, response.getheader("Content-Type", "")
    except OSError as exc:
        return _connection_problem(exc, host, port)
    except http.client.HTTPException as exc:
        return _wrong(f"{host}:{port} does not speak HTTP ({type(exc).__name__})")
    finally:
        connection.close()
    if status in (401, 403):
        return _wrong(f"HTTP {status} {reason}: user name or password refused")
    if 400 <= status < 500:
        return _wrong(f"HTTP {status} {reason}: no such stream at {without_credentials(uri)}")
    if status >= 500:
        return _transient(f"HTTP {status} {reason}: the camera's server failed")
    if content_type and not content_type.lower().startswith(_VIDEO_TYPES):
        return _wrong(f"not a video: the address answers with {content_type.split(';')[0]}")
    return _UP


def _rtsp_request(sock: socket.socket, uri: str, cseq: int, authorization: str | None) -> tuple[int, str, dict[str, str]]:
    lines = [f"DESCRIBE {without_credentials(uri)} RTSP/1.0", f"CSeq: {cseq}", "Accept: application/sdp", "User-Agent: nonsite-probe"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer and len(answer) < 16384:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3}) ?(.*)", head[0] if head else "")
    if not match:
        raise ValueError("not an RTSP answer")
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(match.group(1)), match.group(2), fields


def _basic(user: str, password: str | None) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode()


def _digest(challenge: str, user: str, password: str, uri: str) -> str:
    """RFC 2617 Digest response (MD5, no qop), as IP cameras ask for it."""
    found = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm, nonce = found.get("realm", ""), found.get("nonce", "")
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"DESCRIBE:{uri}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}"'


def _diagnose_rtsp(uri: str, timeout_s: float) -> Diagnosis:
    parts = urlsplit(uri)
    host, port = _port(uri)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            status, reason, fields = _rtsp_request(sock, uri, 1, None)
            if status == 401 and parts.username is not None:
                challenge = fields.get("www-authenticate", "")
                if challenge.lower().startswith("digest"):
                    answer = _digest(challenge, parts.username, parts.password or "", without_credentials(uri))
                else:
                    answer = _basic(parts.username, parts.password)
                status, reason, fields = _rtsp_request(sock, uri, 2, answer)
    except OSError as exc:
        return _connection_problem(exc, host, port)
    except ValueError:
        return _wrong(f"{host}:{port} does not speak RTSP")
    if status == 401:
        asked = "user name or password refused" if parts.username is not None else "the camera asks for a user name and password"
        return _wrong(f"RTSP 401 {reason}: {asked}")
    if status in (403, 404, 454):
        return _wrong(f"RTSP {status} {reason}: no such stream at {without_credentials(uri)}")
    if status >= 500:
        return _transient(f"RTSP {status} {reason}: the camera's server failed")
    if status >= 400:
        return _wrong(f"RTSP {status} {reason}")
    return _UP
