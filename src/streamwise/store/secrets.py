"""The cipher that keeps stored credentials encrypted at rest: Fernet (AES-128-CBC with HMAC-SHA256).

The key is `STREAMWISE_SECRET_KEY` when it is set, or else `secret.key` in the data directory, made on
first use. That file is published atomically: the key is written to a private temporary file (mode
0600, `O_EXCL`) that is then hard-linked into place, which fails if another process got there first;
the loser reads the winner's key, so every process sharing a data directory encrypts with one key.

No error raised here holds a key or a decrypted value: messages name the setting or the file's role,
and the path of the file goes only to `detail` (the server log).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from streamwise.errors import InternalError

logger = logging.getLogger("streamwise.store")

KEY_FILE_NAME = "secret.key"
# A process that lost the race on a filesystem without hard links may find the winner's file still
# empty for a moment: it reads again this many times, 10 ms apart.
_READ_TRIES = 200


class SecretKeyError(InternalError):
    """The secret key is unusable: not a Fernet key, or not the key the stored data was encrypted with."""


class WrongSecretKey(SecretKeyError):
    """A stored credential does not decrypt with this server's key: the key changed since it was saved."""


def wrong_key(source: str) -> WrongSecretKey:
    """The error for data this key did not encrypt; `source` (the log's only) says where the key is."""
    return WrongSecretKey(
        "Stored credentials cannot be decrypted with this server's secret key (STREAMWISE_SECRET_KEY, "
        "or secret.key in the data directory): the key is not the one they were saved with",
        detail=f"the key in use is {source}",
    )


class CredentialCipher:
    """Encrypts a credential's fields (a JSON object of text) to a Fernet token, and back.

    With `key` None the key comes from `key_file`, read (or made) at the first encryption or
    decryption, so a server that stores no credential never writes one.
    """

    def __init__(self, key: SecretStr | str | bytes | None = None, key_file: Path | None = None) -> None:
        if key is None and key_file is None:
            raise ValueError("a CredentialCipher needs a key or a key file")
        self._key_file = key_file
        self._source = "STREAMWISE_SECRET_KEY" if key is not None else f"the key file {key_file}"
        self._lock = threading.Lock()
        self._fernet: Fernet | None = None
        if key is not None:
            raw = key.get_secret_value() if isinstance(key, SecretStr) else key
            self._fernet = _fernet(raw, "STREAMWISE_SECRET_KEY is not a Fernet key")

    @classmethod
    def from_settings(cls, secret_key: SecretStr | None, data_dir: Path) -> CredentialCipher:
        """The server's cipher: `STREAMWISE_SECRET_KEY`, or `secret.key` in the data directory."""
        return cls(secret_key, data_dir / KEY_FILE_NAME)

    def encrypt(self, data: Mapping[str, str]) -> str:
        return self._key().encrypt(orjson.dumps(dict(data))).decode("ascii")

    def decrypt(self, token: str) -> dict[str, str]:
        """The fields a token holds; `WrongSecretKey` when this key did not make it."""
        try:
            plain = self._key().decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise wrong_key(self._source) from None
        try:
            data = orjson.loads(plain)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
            raise InternalError(
                "A stored credential is not readable: its decrypted data is not an object of text"
            )
        return data

    def _key(self) -> Fernet:
        if self._fernet is None:
            with self._lock:
                if self._fernet is None:
                    assert self._key_file is not None
                    self._fernet = _fernet(load_or_create_key(self._key_file), _BAD_FILE)
        return self._fernet


_BAD_FILE = "secret.key in the data directory is not a Fernet key"


def _fernet(key: str | bytes, message: str) -> Fernet:
    try:
        return Fernet(key.strip())
    except (ValueError, TypeError):
        raise SecretKeyError(
            f"{message} (32 url-safe base64-encoded bytes; make one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
        ) from None


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, made first (mode 0600) when there is none; safe for racing processes."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key()
    try:
        _publish(path, key)
    except FileExistsError:
        pass  # another process published first: its key is the one
    else:
        logger.info("made a new secret key for stored credentials in %s", path)
    return _read_key(path)


def _publish(path: Path, key: bytes) -> None:
    """Put `key` at `path` whole, or raise `FileExistsError` when a file is there already."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
    _write_new(temporary, key)
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (some network and FUSE filesystems): create the file itself exclusively.
        # A racing reader may then see it empty for a moment, which `_read_key` waits out.
        _write_new(path, key)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(path.parent)


def _write_new(path: Path, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the key file itself is already on disk
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _read_key(path: Path) -> bytes:
    for _ in range(_READ_TRIES):
        key = path.read_bytes().strip()
        if key:
            _warn_if_readable_by_others(path)
            return key
        time.sleep(0.01)
    raise SecretKeyError(f"{_BAD_FILE}: it is empty", detail=str(path))


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("%s can be read by other users: `chmod 600` it", path)
