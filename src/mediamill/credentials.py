"""Source accounts kept out of the catalog.

An Xtream stream URL carries the account (``http://host/movie/USER/PASS/12.mp4``), and so do
many M3U entries (``…/USER/PASS/…``, ``?username=…&password=…``, ``http://user:pass@host``).
The catalog (items' metadata), the API and the logs must never hold it, so a source stores its
stream URLs with a marker where the account goes (``{credentials:TAG}``) and the account itself
in ``credentials.json`` in the data dir (mode 0600, in a 0700 folder) under that tag: an
Xtream account (:func:`marker`), or a credential exactly as the URL spelled it
(:func:`secret`). The strm export puts them back (:func:`fill`) when it writes a ``.strm``.

``TAG`` is an HMAC of the server and the account under a random key kept in the same file: it
tells nothing about the password, and a new password makes a new tag, so the entries' metadata
(and so their fingerprints) change and every ``.strm`` file is written again with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

FILE = "credentials.json"
_MARKER = re.compile(r"\{credentials:([0-9a-f]{32})\}")
_lock = threading.Lock()
#: tag -> what the marker stands for in a URL, as last read from the file by this process
_known: dict[str, str] = {}


class MissingCredentials(ValueError):
    """A stream URL's account is not in the data dir (another machine, a deleted file)."""


def _path() -> Path:
    from mediamill.settings import private_data_dir

    return private_data_dir() / FILE


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """This process's threads and other processes (two commands at once) one at a time."""
    import fcntl

    with _lock, open(path.with_suffix(".lock"), "a+b") as lock_file:
        os.fchmod(lock_file.fileno(), 0o600)
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        yield


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise MissingCredentials(f"{path} is not readable JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically, and created 0600: the password is never readable by others, not even for
    the moment between a create and a chmod."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(json.dumps(data, indent=1, sort_keys=True).encode())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _keep(identity: tuple[str, ...], record: dict[str, str]) -> str:
    """The marker of ``record`` (kept in the data dir under an HMAC of ``identity``)."""
    path = _path()
    with _locked(path):
        data = _read(path)
        key = data.get("key")
        if not isinstance(key, str):
            key = data["key"] = secrets.token_hex(32)
        raw = "\0".join(identity).encode()
        tag = hmac.new(bytes.fromhex(key), raw, hashlib.sha256).hexdigest()[:32]
        accounts = data.setdefault("accounts", {})
        if accounts.get(tag) != record:
            accounts[tag] = record
            _write(path, data)
    _known[tag] = _stands_for(record)
    return "{credentials:" + tag + "}"


def _stands_for(record: dict[str, Any]) -> str:
    """What a marker is replaced by: a credential's own text, or an Xtream account as the
    URL's ``USER/PASS`` path segments."""
    if "text" in record:
        return str(record["text"])
    username, password = str(record["username"]), str(record["password"])
    return f"{quote(username, safe='')}/{quote(password, safe='')}"


def marker(server: str, username: str, password: str) -> str:
    """What stands for the account in the stream URLs of ``server`` (its ``USER/PASS`` path
    segments); the account is kept in the data dir under it."""
    return _keep((server, username, password), {"username": username, "password": password})


def secret(text: str) -> str:
    """What stands for ``text``, a credential exactly as a URL spells it (a password, a
    token, ``user:pass``); it is kept in the data dir under the marker."""
    return _keep(("text", text), {"text": text})


def fill(url: str) -> str:
    """``url`` with what each of its markers stands for; a URL without a marker is returned
    as it is. Never log what this returns."""
    if "{credentials:" not in url:
        return url
    return _MARKER.sub(lambda found: _lookup(found.group(1)), url)


def _lookup(tag: str) -> str:
    if tag not in _known:
        path = _path()
        with _locked(path):
            accounts = _read(path).get("accounts", {})
        for known_tag, record in accounts.items():
            _known[known_tag] = _stands_for(record)
        if tag not in _known:
            raise MissingCredentials(
                f"the account of this entry's stream URL is not in {path}: read the source "
                "again with its credentials (in the URL, or MEDIAMILL_XTREAM_USER/PASS)"
            )
    return _known[tag]
