"""Credentials at rest: encrypted with the server's key, never handed out with a record, cached with
care; the key: from the settings or a private file made once, shared by racing processes."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text

from streamwise.store import Database
from streamwise.store.credentials import CredentialExists, CredentialRepository
from streamwise.store.secrets import (
    KEY_FILE_NAME,
    CredentialCipher,
    SecretKeyError,
    WrongSecretKey,
    load_or_create_key,
)

SECRET = "sk-test-4f1c9a7e-plaintext-never-stored"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cipher(tmp_path: Path) -> CredentialCipher:
    return CredentialCipher.from_settings(None, tmp_path)


@pytest.fixture
def credentials(db: Database, cipher: CredentialCipher) -> CredentialRepository:
    return CredentialRepository(db, cipher)


async def _raw_rows(db: Database) -> list[str]:
    async with db.session() as session:
        rows = (await session.execute(text("SELECT * FROM credential"))).all()
    return [" ".join(str(value) for value in row) for row in rows]


async def test_the_data_is_encrypted_at_rest_and_decrypts_back(
    db: Database, credentials: CredentialRepository
) -> None:
    record = await credentials.create(
        name="OpenAI", credential_name="openAIApi", data={"openAIApiKey": SECRET}
    )

    rows = await _raw_rows(db)
    assert len(rows) == 1 and record.id in rows[0] and "openAIApi" in rows[0]
    assert SECRET not in rows[0] and "openAIApiKey" not in rows[0]
    assert await credentials.decrypted(record.id) == {"openAIApiKey": SECRET}


async def test_records_never_carry_the_data(credentials: CredentialRepository) -> None:
    record = await credentials.create(
        name="OpenAI", credential_name="openAIApi", data={"openAIApiKey": SECRET}
    )

    for shown in (record, await credentials.get(record.id), *(await credentials.list())):
        assert shown is not None
        assert set(shown.to_json()) == {"id", "name", "credentialName", "createdDate", "updatedDate"}
        assert SECRET not in repr(shown) and SECRET not in str(shown.to_json())
    assert record.to_json()["createdDate"].endswith("Z")


async def test_a_chosen_id_is_kept_and_may_not_be_taken_twice(credentials: CredentialRepository) -> None:
    record = await credentials.create(
        name="a", credential_name="openAIApi", data={}, credential_id="5f5d7f6c-2a51-4a36-9c64-1f0c2d0f9e11"
    )
    assert record.id == "5f5d7f6c-2a51-4a36-9c64-1f0c2d0f9e11"

    with pytest.raises(CredentialExists):
        await credentials.create(name="b", credential_name="openAIApi", data={}, credential_id=record.id)
    assert [item.name for item in await credentials.list()] == ["a"]


async def test_list_filters_by_kind_oldest_first(credentials: CredentialRepository) -> None:
    first = await credentials.create(name="one", credential_name="openAIApi", data={})
    await credentials.create(name="two", credential_name="chromaApi", data={})
    third = await credentials.create(name="three", credential_name="openAIApi", data={})

    assert [item.name for item in await credentials.list()] == ["one", "two", "three"]
    assert [item.id for item in await credentials.list(["openAIApi"])] == [first.id, third.id]
    assert len(await credentials.list(["openAIApi", "chromaApi", "openAIApi"])) == 3
    assert await credentials.list(["nothing"]) == []


async def test_update_merges_the_data_as_flowise_does(credentials: CredentialRepository) -> None:
    record = await credentials.create(
        name="Azure", credential_name="azureOpenAIApi", data={"key": "k1", "instance": "east"}
    )
    assert await credentials.decrypted(record.id) == {"key": "k1", "instance": "east"}  # now cached

    updated = await credentials.update(record.id, name="Azure 2", data={"key": "k2", "instance": None})

    assert updated is not None and updated.name == "Azure 2" and updated.credentialName == "azureOpenAIApi"
    assert updated.updatedDate > record.updatedDate and updated.createdDate == record.createdDate
    assert await credentials.decrypted(record.id) == {"key": "k2"}  # the cache forgot the old data
    renamed = await credentials.update(record.id, credential_name="openAIApi")
    assert renamed is not None and renamed.name == "Azure 2"
    assert await credentials.decrypted(record.id) == {"key": "k2"}


async def test_update_and_delete_of_a_missing_credential(credentials: CredentialRepository) -> None:
    assert await credentials.update("missing", name="x") is None
    assert await credentials.update("missing", data={"a": "b"}) is None
    assert await credentials.delete("missing") is False
    assert await credentials.get("missing") is None
    assert await credentials.decrypted("missing") is None


async def test_delete_forgets_the_cached_data(credentials: CredentialRepository) -> None:
    record = await credentials.create(name="x", credential_name="openAIApi", data={"openAIApiKey": SECRET})
    assert await credentials.decrypted(record.id) is not None

    assert await credentials.delete(record.id) is True

    assert await credentials.decrypted(record.id) is None
    assert await credentials.get(record.id) is None


async def test_another_process_sees_a_change_once_its_cache_expires(
    db: Database, cipher: CredentialCipher
) -> None:
    here = CredentialRepository(db, cipher, cache_seconds=0.05)
    elsewhere = CredentialRepository(db, cipher)
    record = await here.create(name="x", credential_name="openAIApi", data={"openAIApiKey": "old"})
    assert await here.decrypted(record.id) == {"openAIApiKey": "old"}

    await elsewhere.update(record.id, data={"openAIApiKey": "new"})
    await asyncio.sleep(0.06)

    assert await here.decrypted(record.id) == {"openAIApiKey": "new"}


async def test_a_changed_key_is_a_clear_error_that_names_no_secret(db: Database, tmp_path: Path) -> None:
    first_key, other_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    saved = CredentialRepository(db, CredentialCipher(SecretStr(first_key)))
    record = await saved.create(name="x", credential_name="openAIApi", data={"openAIApiKey": SECRET})
    assert await saved.key_matches()

    wrong = CredentialRepository(db, CredentialCipher(SecretStr(other_key)))
    with pytest.raises(WrongSecretKey) as caught:
        await wrong.decrypted(record.id)
    with pytest.raises(WrongSecretKey):
        await wrong.update(record.id, data={"openAIApiKey": "sk-new"})

    message = str(caught.value)
    assert "secret key" in message and "STREAMWISE_SECRET_KEY" in message
    assert caught.value.detail == "the key in use is STREAMWISE_SECRET_KEY"
    for secret in (SECRET, first_key, other_key):
        assert secret not in message and secret not in (caught.value.detail or "")
    assert not await wrong.key_matches()
    # Renaming needs no key: the data is left as it is, and the right key still reads it.
    assert await wrong.update(record.id, name="renamed") is not None
    assert await saved.decrypted(record.id) == {"openAIApiKey": SECRET}


def test_a_settings_key_that_is_not_a_fernet_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError) as caught:
        CredentialCipher.from_settings(SecretStr("hunter2-not-a-key"), tmp_path)

    assert "STREAMWISE_SECRET_KEY is not a Fernet key" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_the_settings_key_wins_and_no_file_is_made(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    cipher = CredentialCipher.from_settings(SecretStr(key.decode()), tmp_path)

    token = cipher.encrypt({"openAIApiKey": SECRET})

    assert Fernet(key).decrypt(token.encode()) == b'{"openAIApiKey":"' + SECRET.encode() + b'"}'
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_the_key_file_is_made_on_first_use_private_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cipher = CredentialCipher.from_settings(None, data_dir)
    assert not (data_dir / KEY_FILE_NAME).exists()  # nothing stored yet: no key made

    token = cipher.encrypt({"openAIApiKey": SECRET})

    key_file = data_dir / KEY_FILE_NAME
    if os.name == "posix":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_bytes().strip())  # a Fernet key
    assert SECRET not in key_file.read_text()
    again = CredentialCipher.from_settings(None, data_dir)
    assert again.decrypt(token) == {"openAIApiKey": SECRET}
    assert [path.name for path in data_dir.iterdir()] == [KEY_FILE_NAME]  # no temporary file left


def test_a_key_file_made_by_another_process_first_is_the_one_read(tmp_path: Path) -> None:
    key_file = tmp_path / KEY_FILE_NAME
    theirs = Fernet.generate_key()
    key_file.write_bytes(theirs + b"\n")

    assert load_or_create_key(key_file) == theirs


def test_a_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("not a key")

    with pytest.raises(SecretKeyError) as caught:
        CredentialCipher.from_settings(None, tmp_path).encrypt({"a": "b"})

    assert "secret.key in the data directory is not a Fernet key" in str(caught.value)
    assert "not a key" not in str(caught.value)


def test_processes_racing_to_make_the_key_all_get_the_same_one(tmp_path: Path) -> None:
    key_file = tmp_path / "shared" / KEY_FILE_NAME
    start_at = time.time() + 1.0
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from streamwise.store.secrets import load_or_create_key
        while time.time() < {start_at!r}:
            time.sleep(0.001)
        sys.stdout.write(load_or_create_key(Path({str(key_file)!r})).decode())
        """
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
        )
        for _ in range(6)
    ]
    outputs = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err.decode()
        outputs.append(out.decode())

    assert len(set(outputs)) == 1 and outputs[0]
    assert key_file.read_bytes().strip().decode() == outputs[0]
    assert [path.name for path in key_file.parent.iterdir()] == [KEY_FILE_NAME]
