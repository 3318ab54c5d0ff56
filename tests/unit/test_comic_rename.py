"""Rename templates: padding, missing fields, folders, and names safe on every file system."""

from __future__ import annotations

import pytest

from mediamill.comic.rename import TemplateError, check_template, render, safe_part, template_fields

VALUES = template_fields(
    {
        "Series": "Saga",
        "Number": "7",
        "Year": 2012,
        "Volume": 1,
        "Publisher": "Image",
        "Title": "Part: One",
    }
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{series} #{issue:03} ({year})", "Saga/Saga #007 (2012).cbz"),
        ("{series} - Chapter {issue:04}", "Saga/Saga - Chapter 0007.cbz"),
        ("{series} v{volume} {issue}", "Saga/Saga v1 7.cbz"),
        ("{series} - {title}", "Saga/Saga - Part - One.cbz"),
    ],
)
def test_templates_rename_the_file_in_its_folder(template: str, expected: str) -> None:
    assert render(template, VALUES, current="Saga/old name.cbz", suffix=".cbz") == expected


def test_a_template_with_folders_is_a_path_from_the_library_root() -> None:
    got = render(
        "{publisher}/{series}/{series} #{issue:03}", VALUES, current="in/x.cbr", suffix=".cbz"
    )
    assert got == "Image/Saga/Saga #007.cbz"


def test_fields_in_brackets_are_optional_and_the_others_required() -> None:
    values = template_fields({"Series": "Saga", "Number": "7.5"})
    assert (
        render("{series} #{issue:03} ({year})", values, current="a.cbz", suffix=".cbz")
        == "Saga #007.5.cbz"
    )
    assert (
        render("{series} [{title}] #{issue}", values, current="a.cbz", suffix=".cbz")
        == "Saga #7.5.cbz"
    )
    assert render("{series} - {title}", values, current="a.cbz", suffix=".cbz") is None
    assert (
        render(
            "{series} #{issue}", template_fields({"Series": "Saga"}), current="a.cbz", suffix=".cbz"
        )
        is None
    )


def test_values_never_make_folders_or_leave_the_root() -> None:
    values = template_fields({"Series": "../../etc/AC/DC", "Number": "1"})
    got = render("{series} {issue}", values, current="a.cbz", suffix=".cbz")
    assert got == "-..-etc-AC-DC 1.cbz"


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ('What? <Really> "yes" | no*', "What Really yes no"),
        ("CON", "_CON"),
        ("com1.cbz", "_com1.cbz"),
        ("Trailing dots...", "Trailing dots"),
        (".hidden", "hidden"),
        ("tab\there\x00", "tab here"),
    ],
)
def test_path_parts_are_valid_everywhere(raw: str, safe: str) -> None:
    assert safe_part(raw) == safe


def test_long_names_are_cut_to_255_bytes_keeping_the_suffix() -> None:
    part = safe_part("é" * 300 + ".cbz")
    assert len(part.encode()) <= 255
    assert part.endswith(".cbz")


def test_bad_templates_are_refused_with_the_cause() -> None:
    with pytest.raises(TemplateError, match="positional"):
        check_template("{series} {0}")
    with pytest.raises(TemplateError):
        check_template("{series")
    with pytest.raises(TemplateError, match="empty"):
        check_template("  ")
