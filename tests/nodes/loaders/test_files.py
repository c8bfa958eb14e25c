"""File inputs: Flowise data URLs, JSON arrays of them, server uploads; never a path from a request."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from streamwise.engine.retrieval import UploadedFile
from streamwise.errors import NodeConfigError
from streamwise.nodes.loaders import files, text_file
from streamwise.nodes.loaders.files import FileInput, file_inputs
from streamwise.nodes.services import NodeServices
from tests.nodes.loaders.helpers import FIXTURES, assert_clean_message, data_url, data_urls, load

LIMIT = files.MAX_FILE_BYTES


def test_a_flowise_data_url_gives_its_bytes_and_file_name() -> None:
    (found,) = file_inputs("n", "txtFile", data_url("sample.txt", "text/plain"), LIMIT)

    assert found.name == "sample.txt" and found.media_type == "text/plain"
    assert found.read() == (FIXTURES / "sample.txt").read_bytes()


def test_a_json_array_of_data_urls_gives_every_file_and_skips_empty_entries() -> None:
    value = data_urls(data_url("sample.txt"), "", data_url("sample.md"))

    found = file_inputs("n", "txtFile", value, LIMIT)

    assert [file.name for file in found] == ["sample.txt", "sample.md"]


def test_a_data_url_without_a_file_name_is_called_upload() -> None:
    value = "data:text/plain;base64," + base64.b64encode(b"hello").decode()

    (found,) = file_inputs("n", "txtFile", value, LIMIT)

    assert found.name == "upload" and found.read() == b"hello"


def test_a_file_name_is_reduced_to_its_last_part_without_control_characters() -> None:
    value = "data:text/plain;base64,aGk=,filename:../../etc/pa\x00ss\nwd.txt"

    (found,) = file_inputs("n", "txtFile", value, LIMIT)

    assert found.name == "passwd.txt"


def test_percent_encoded_data_urls_are_read_too() -> None:
    (found,) = file_inputs("n", "txtFile", "data:text/plain,hello%20world,filename:a.txt", LIMIT)

    assert found.read() == b"hello world"


def test_uploaded_files_are_taken_as_the_server_gives_them() -> None:
    upload = UploadedFile("notes.txt", FIXTURES / "sample.txt", "text/plain")

    (one,) = file_inputs("n", "txtFile", upload, LIMIT)
    several = file_inputs("n", "txtFile", [upload, upload], LIMIT)

    assert one.name == "notes.txt" and one.path == FIXTURES / "sample.txt"
    assert len(several) == 2


def test_an_empty_input_has_no_files() -> None:
    assert file_inputs("n", "txtFile", "", LIMIT) == ()
    assert file_inputs("n", "txtFile", None, LIMIT) == ()


@pytest.mark.parametrize(
    "value",
    [
        "/etc/passwd",
        "tests/fixtures/documents/sample.txt",
        "~/.ssh/id_rsa",
        "file:///etc/passwd",
        '["/etc/passwd"]',
        "[not json]",
        "data:no-comma-here",
        42,
    ],
)
def test_paths_and_other_values_are_refused_naming_the_node_and_input(value: object) -> None:
    with pytest.raises(NodeConfigError) as caught:
        file_inputs("textFile_0", "txtFile", value, LIMIT)

    message = str(caught.value)
    assert message.startswith(
        "Node textFile_0: input 'txtFile' must be an uploaded file or Flowise data URLs"
    )
    assert caught.value.node_id == "textFile_0"
    assert "/etc/passwd" not in message


def test_flowise_storage_references_are_refused_with_what_to_do_instead() -> None:
    with pytest.raises(NodeConfigError) as caught:
        file_inputs("pdfFile_0", "pdfFile", 'FILE-STORAGE::["a.pdf"]', LIMIT)

    assert "Flowise's storage" in str(caught.value) and "upload the file" in str(caught.value)


def test_building_a_loader_reads_nothing(services: NodeServices) -> None:
    # Neither the missing upload nor the broken base64 is touched until the loader loads.
    missing = [UploadedFile("gone.txt", Path("/nonexistent/gone.txt"))]
    broken = "data:text/plain;base64,@@@@,filename:broken.txt"

    for value in (missing, broken):
        loader = text_file.build("textFile_0", {"txtFile": value}, services)
        with pytest.raises(NodeConfigError) as caught:
            load(loader)
        assert_clean_message(str(caught.value))
        assert str(caught.value).startswith("Node textFile_0: file ")


def test_invalid_base64_is_refused_naming_the_file() -> None:
    (found,) = file_inputs("n", "txtFile", "data:text/plain;base64,@@@@,filename:broken.txt", LIMIT)

    with pytest.raises(NodeConfigError, match=r"^Node n: file 'broken.txt' is not valid base64 data$"):
        found.read()


def test_files_over_the_limit_are_refused_before_they_are_read(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 2000)
    on_disk = FileInput("n", "big.txt", 1000, path=big)
    (as_url,) = file_inputs("n", "txtFile", data_url("big.txt", content=b"x" * 2000), 1000)

    for file in (on_disk, as_url):
        with pytest.raises(NodeConfigError) as caught:
            file.read()
        assert (
            str(caught.value) == "Node n: file 'big.txt' is larger than the 1000 bytes limit for a document"
        )


def test_the_limit_is_50_mib_unless_the_server_sets_another(services: NodeServices) -> None:
    assert files.max_file_bytes(services) == 50 * 1024 * 1024
    setattr(services, "max_document_bytes", 1234)  # noqa: B010 - a setting the server may add

    assert files.max_file_bytes(services) == 1234


def test_the_module_limit_applies_to_loaders(services: NodeServices, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 10)
    loader = text_file.build("textFile_0", {"txtFile": data_url("sample.txt")}, services)

    with pytest.raises(NodeConfigError, match=r"is larger than the .* limit for a document"):
        load(loader)
