"""csvFile: one document per row (or one column's values), with Flowise's row numbers."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from streamwise.errors import NodeConfigError
from streamwise.nodes.loaders import csv_file
from streamwise.nodes.services import NodeServices
from tests.nodes.loaders.helpers import assert_clean_message, data_url, load, uploaded


def test_each_row_is_a_document_of_column_value_lines(services: NodeServices) -> None:
    documents = load(csv_file.build("csvFile_0", {"csvFile": uploaded("sample.csv")}, services))

    assert len(documents) == 4
    assert documents[0].page_content == (
        "name: Ada Lovelace\nrole: mathematician\ncity: London\n"
        "notes: wrote the first program, for the Analytical Engine"
    )
    assert documents[2].page_content.endswith('notes: asked "can machines think?"')
    assert documents[3].page_content.startswith("name: Émilie du Châtelet")
    assert [dict(document.metadata) for document in documents] == [
        {"source": "sample.csv", "line": number, "row": number} for number in (1, 2, 3, 4)
    ]


def test_column_name_takes_one_column(services: NodeServices) -> None:
    loader = csv_file.build("c", {"csvFile": data_url("sample.csv"), "columnName": " city "}, services)

    assert [document.page_content for document in load(loader)] == [
        "London",
        "New York",
        "Manchester",
        "Paris",
    ]


def test_the_delimiter_is_guessed_and_missing_values_read_empty(services: NodeServices) -> None:
    content = b"a;b;c\n1;2;3\n\n4;5\n"

    documents = load(csv_file.build("c", {"csvFile": data_url("semi.csv", content=content)}, services))

    assert [document.page_content for document in documents] == ["a: 1\nb: 2\nc: 3", "a: 4\nb: 5\nc: "]
    assert [document.metadata["line"] for document in documents] == [1, 2]


def test_an_unknown_column_is_refused_naming_the_file(services: NodeServices) -> None:
    loader = csv_file.build("csvFile_0", {"csvFile": uploaded("sample.csv"), "columnName": "age"}, services)

    with pytest.raises(NodeConfigError, match=r"^Node csvFile_0: file 'sample.csv' has no column 'age'$"):
        load(loader)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n\n  \n", "is empty"),
        ("sample.pdf", None, "is a PDF document, not a CSV file"),
        ("sample.docx", None, "is a ZIP archive (such as a DOCX file), not a CSV file"),
        ("nul.csv", b"a,b\n1,\x002\n", "is binary data, not a CSV file"),
        ("latin1.csv", "a,b\ncafé,1\n".encode("latin-1"), "is not a CSV file in UTF-8"),
    ],
)
def test_files_that_are_not_csv_are_refused_naming_the_file(
    services: NodeServices, name: str, content: bytes | None, problem: str
) -> None:
    loader = csv_file.build("csvFile_0", {"csvFile": data_url(name, content=content)}, services)

    with pytest.raises(NodeConfigError) as caught:
        load(loader)

    assert str(caught.value) == f"Node csvFile_0: file {name!r} {problem}"
    assert_clean_message(str(caught.value))


def test_rows_are_read_as_the_loader_is_iterated(services: NodeServices) -> None:
    content = ("n\n" + "".join(f"{i}\n" for i in range(10_000))).encode()
    documents = csv_file.build("c", {"csvFile": data_url("many.csv", content=content)}, services).load()

    assert next(documents).page_content == "n: 0"
    assert next(documents).metadata["row"] == 2
    assert isinstance(documents, Generator)
    documents.close()
