"""Comic archives of every format, RAR refusals, and ComicInfo.xml round trips."""

from __future__ import annotations

import io
import shutil
import zipfile
import zlib
from pathlib import Path

import pytest
from lxml import etree

from mediamill.comic import archive as arc
from mediamill.comic import comicinfo as ci
from mediamill.testing.comics import page_set, write_comic

DATA = Path(__file__).parent.parent / "data" / "comic"

FULL_XML = """<?xml version="1.0"?>
<ComicInfo xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Title>Anda's Game</Title><Series>Futuristic Tales</Series><Number>1</Number>
  <Count>12</Count><Volume>2007</Volume><AlternateSeries>Alt</AlternateSeries>
  <AlternateNumber>3</AlternateNumber><AlternateCount>4</AlternateCount>
  <Summary>A story &amp; more</Summary><Notes>n</Notes><Year>2007</Year><Month>5</Month>
  <Day>9</Day><Writer>Cory Doctorow</Writer><Penciller>P</Penciller><Inker>I</Inker>
  <Colorist>C</Colorist><Letterer>L</Letterer><CoverArtist>CA</CoverArtist>
  <Editor>E</Editor><Translator>T</Translator><Publisher>IDW</Publisher>
  <Imprint>Imp</Imprint><Genre>SF</Genre><Tags>a,b</Tags><Web>https://x.test</Web>
  <PageCount>3</PageCount><LanguageISO>en</LanguageISO><Format>Series</Format>
  <BlackAndWhite>No</BlackAndWhite><Manga>YesAndRightToLeft</Manga>
  <Characters>Anda</Characters><Teams>Team</Teams><Locations>Earth</Locations>
  <ScanInformation>scan</ScanInformation><StoryArc>Arc</StoryArc>
  <StoryArcNumber>1</StoryArcNumber><SeriesGroup>G</SeriesGroup><AgeRating>Teen</AgeRating>
  <Pages><Page Image="0" Type="FrontCover" ImageSize="100"/>
    <Page Image="1" DoublePage="true"/></Pages>
  <CommunityRating>4.5</CommunityRating><MainCharacterOrTeam>Anda</MainCharacterOrTeam>
  <Review>Good</Review><GTIN>9781234567897</GTIN>
  <SeriesSort>Tales</SeriesSort><LocalizedSeries>Contes</LocalizedSeries>
  <TitleSort>Game</TitleSort>
  <ComicTaggerNote source="ct">kept <b>as is</b></ComicTaggerNote>
</ComicInfo>"""


def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(DATA / name)))


@pytest.mark.parametrize("suffix", ["cbz", "cb7", "cbt"])
def test_every_writable_format_is_read_page_by_page_with_its_comicinfo(
    tmp_path: Path, suffix: str
) -> None:
    path = write_comic(
        tmp_path / f"Saga 001.{suffix}",
        pages=5,
        seed=3,
        comicinfo="<ComicInfo><Series>Saga</Series></ComicInfo>",
    )
    with arc.ComicArchive(path) as archive:
        assert archive.format == {"cbz": "zip", "cb7": "7z", "cbt": "tar"}[suffix]
        assert archive.pages() == [name for name, _ in page_set(5, seed=3)]
        assert archive.read("page002.jpg") == dict(page_set(5, seed=3))["page002.jpg"]
        raw = archive.comicinfo()
    assert raw is not None
    assert ci.parse(raw).get("Series") == "Saga"


def test_the_format_is_told_by_content_not_by_suffix(tmp_path: Path) -> None:
    path = write_comic(tmp_path / "mislabelled.cbr", fmt="cbz", pages=2)
    with arc.ComicArchive(path) as archive:
        assert archive.format == "zip"


@pytest.mark.parametrize(
    ("fixture", "names"),
    [
        ("rar4.cbr", ["test.txt", "testdir/test.txt"]),
        ("rar5.cbr", ["test1.bin", "test2.bin", "test3.bin", "test4.bin"]),
        ("rar5-solid.cbr", ["test1.bin", "test2.bin", "test3.bin", "test4.bin"]),
    ],
)
def test_rar4_rar5_and_solid_rar5_are_read(fixture: str, names: list[str]) -> None:
    with arc.ComicArchive(DATA / fixture) as archive:
        assert archive.format == "rar"
        assert archive.names() == names
        contents = dict(archive.members())
    assert all(len(data) > 0 for data in contents.values())
    if fixture == "rar4.cbr":
        assert contents["test.txt"] == b"test text document\r\n"


def _solid_rar4(tmp_path: Path) -> Path:
    """The RAR4 fixture with its main header's solid flag set (and its CRC fixed)."""
    raw = bytearray((DATA / "rar4.cbr").read_bytes())
    main = 7  # the main header follows the 7-byte marker
    raw[main + 3] |= 0x08
    size = int.from_bytes(raw[main + 5 : main + 7], "little")
    crc = zlib.crc32(bytes(raw[main + 2 : main + size])) & 0xFFFF
    raw[main : main + 2] = crc.to_bytes(2, "little")
    path = tmp_path / "solid.cbr"
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    ("fixture", "cause"),
    [
        ("rar4-encrypted.cbr", "encrypted RAR archive"),
        ("rar5-encrypted.cbr", "encrypted RAR archive"),
        ("rar4-volume.part1.cbr", "multi-volume RAR archive"),
        ("solid-rar4", "solid RAR4 archive"),
    ],
)
def test_encrypted_multi_volume_and_solid_rar4_are_refused_with_their_cause(
    tmp_path: Path, fixture: str, cause: str
) -> None:
    path = _solid_rar4(tmp_path) if fixture == "solid-rar4" else DATA / fixture
    with pytest.raises(arc.ArchiveError, match=cause):
        arc.ComicArchive(path)


def test_broken_archives_fail_with_a_clear_cause(tmp_path: Path) -> None:
    empty = tmp_path / "empty.cbz"
    empty.write_bytes(b"")
    with pytest.raises(arc.ArchiveError, match="empty file"):
        arc.ComicArchive(empty)
    text = tmp_path / "notes.cbz"
    text.write_text("hello")
    with pytest.raises(arc.ArchiveError, match="not a zip, rar, 7z or tar"):
        arc.ComicArchive(text)
    good = write_comic(tmp_path / "good.cbz", pages=3)
    cut = tmp_path / "cut.cbz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(arc.ArchiveError, match="damaged zip"):
        arc.ComicArchive(cut)
    enc = tmp_path / "enc.cbz"
    shutil.copy(good, enc)
    raw = bytearray(enc.read_bytes())
    raw[6] |= 1  # the first member's "encrypted" flag
    central = raw.rfind(b"PK\x01\x02", 0, len(raw))
    first_central = raw.find(b"PK\x01\x02")
    raw[first_central + 8] |= 1
    assert central >= first_central
    enc.write_bytes(bytes(raw))
    with pytest.raises(arc.ArchiveError, match="encrypted zip"):
        arc.ComicArchive(enc)


def test_comicinfo_keeps_every_field_pages_and_unknown_elements_through_a_round_trip() -> None:
    info = ci.parse(FULL_XML.encode())
    assert len([f for f, _ in ci.SCHEMA_FIELDS if f != "Pages"]) == 43
    assert all(info.get(name) for name, _ in ci.SCHEMA_FIELDS if name != "Pages")
    assert info.pages == [
        {"Image": "0", "Type": "FrontCover", "ImageSize": "100"},
        {"Image": "1", "DoublePage": "true"},
    ]
    again = ci.parse(ci.to_xml(info))
    assert again.fields == info.fields
    assert again.pages == info.pages
    assert b'<ComicTaggerNote source="ct">kept <b>as is</b></ComicTaggerNote>' in ci.to_xml(again)
    assert info.as_dict()["Year"] == 2007
    assert ci.validate(info) == []


def test_what_is_written_validates_against_the_anansi_schemas() -> None:
    info = ci.parse(FULL_XML.encode())
    # the schema knows neither Kavita's extra fields nor other tools' elements
    for name in ("SeriesSort", "LocalizedSeries", "TitleSort"):
        del info.fields[name]
    info.unknown.clear()
    draft = etree.fromstring(ci.to_xml(info))
    assert _schema("ComicInfo-v2.1-draft.xsd").validate(draft), _schema(
        "ComicInfo-v2.1-draft.xsd"
    ).error_log
    for name in ("Translator", "Tags", "StoryArcNumber", "GTIN"):
        del info.fields[name]  # the v2.1 draft's additions
    v20 = _schema("ComicInfo-v2.0.xsd")
    assert v20.validate(etree.fromstring(ci.to_xml(info))), v20.error_log


def test_values_the_schema_rejects_are_reported_by_field() -> None:
    info = ci.ComicInfo(
        fields={"Year": "20x4", "Manga": "Maybe", "CommunityRating": "4.55", "Number": "½"},
        pages=[{"Type": "Cover"}],
    )
    problems = ci.validate(info)
    assert any(p.startswith("Year:") for p in problems)
    assert any(p.startswith("Manga:") for p in problems)
    assert any(p.startswith("CommunityRating:") for p in problems)
    assert any("Image attribute is required" in p for p in problems)
    assert any("'Cover' is not a page type" in p for p in problems)
    assert not any(p.startswith("Number:") for p in problems)


def test_malformed_comicinfo_is_an_error_that_says_so() -> None:
    with pytest.raises(ci.ComicInfoError, match="not well-formed"):
        ci.parse(b"<ComicInfo><Series>oops</ComicInfo>")
    with pytest.raises(ci.ComicInfoError, match="root element"):
        ci.parse(b"<Book/>")


@pytest.mark.parametrize("fmt", ["zip", "7z"])
def test_a_rewrite_keeps_every_member_byte_for_byte_and_replaces_comicinfo(
    tmp_path: Path, fmt: str
) -> None:
    source = write_comic(
        tmp_path / "a.cbz",
        pages=6,
        seed=1,
        comicinfo="<ComicInfo/>",
        extra=[("notes.txt", b"x" * 1000)],
    )
    new_xml = ci.to_xml(ci.ComicInfo(fields={"Series": "A"}))
    dest = tmp_path / "out"
    with arc.ComicArchive(source) as archive:
        members = archive.digests()
        copied = (arc.write_zip if fmt == "zip" else arc.write_7z)(archive, dest, new_xml)
    # what the writer digested on the way is what a separate read finds
    assert {n: m for n, m in copied.items() if n != "ComicInfo.xml"} == {
        n: m for n, m in members.items() if n != "ComicInfo.xml"
    }
    arc.verify(members, dest, new_xml)
    with arc.ComicArchive(dest) as written:
        assert written.format == fmt
        assert written.comicinfo() == new_xml
        assert written.names().count("ComicInfo.xml") == 1


def test_verification_catches_a_changed_or_missing_page(tmp_path: Path) -> None:
    source = write_comic(tmp_path / "a.cbz", pages=3)
    with arc.ComicArchive(source) as archive:
        members = archive.digests()
    other = tmp_path / "b.cbz"
    with zipfile.ZipFile(other, "w") as zf:
        for name, data in page_set(3):
            zf.writestr(name, data if name != "page002.jpg" else data[:-1] + b"\0")
    with pytest.raises(arc.ArchiveError, match=r"page002\.jpg' differs"):
        arc.verify(members, other, None)
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("page001.png", dict(page_set(3))["page001.png"])
    with pytest.raises(arc.ArchiveError, match="missing"):
        arc.verify(members, other, None)


class _Unseekable(io.RawIOBase):
    """A write-only stream, as a zipper writing to a pipe sees it (data descriptors)."""

    def __init__(self, target: io.BufferedWriter) -> None:
        self.target = target

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        return self.target.write(bytes(data))  # type: ignore[arg-type]


def test_members_with_data_descriptors_are_copied_whole(tmp_path: Path) -> None:
    source = tmp_path / "streamed.cbz"
    with source.open("wb") as raw, zipfile.ZipFile(_Unseekable(raw), "w") as zf:
        for name, data in page_set(3):
            zf.writestr(name, data, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(source) as zf:
        assert all(info.flag_bits & 0x08 for info in zf.infolist())
    new_xml = ci.to_xml(ci.ComicInfo(fields={"Series": "A"}))
    with arc.ComicArchive(source) as archive:
        members = archive.digests()
        arc.write_zip(archive, tmp_path / "out.cbz", new_xml)
    arc.verify(members, tmp_path / "out.cbz", new_xml)


def test_a_zip_with_comicinfo_last_is_retagged_by_a_kernel_copy_and_a_byte_check(
    tmp_path: Path,
) -> None:
    source = write_comic(tmp_path / "a.cbz", pages=4, comicinfo="<ComicInfo/>")
    new_xml = ci.to_xml(ci.ComicInfo(fields={"Series": "A"}))
    with arc.ComicArchive(source) as archive:
        prefix = arc.append_comicinfo(archive, tmp_path / "out.cbz", new_xml)
        assert prefix is not None
        assert prefix == source.read_bytes().rfind(b"PK\x03\x04")  # up to the old ComicInfo
        arc.verify_prefix(archive, tmp_path / "out.cbz", prefix, new_xml)
        members = archive.digests()
    arc.verify(members, tmp_path / "out.cbz", new_xml)  # the full check agrees
    raw = bytearray((tmp_path / "out.cbz").read_bytes())
    raw[prefix // 2] ^= 0xFF  # one flipped byte inside a stored page
    (tmp_path / "bad.cbz").write_bytes(bytes(raw))
    with arc.ComicArchive(source) as archive, pytest.raises(arc.ArchiveError, match="differ"):
        arc.verify_prefix(archive, tmp_path / "bad.cbz", prefix, new_xml)


def test_a_zip_with_comicinfo_in_the_middle_takes_the_member_by_member_copy(
    tmp_path: Path,
) -> None:
    source = tmp_path / "middle.cbz"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("page001.jpg", b"one")
        zf.writestr("ComicInfo.xml", b"<ComicInfo/>")
        zf.writestr("page002.jpg", b"two")
    with arc.ComicArchive(source) as archive:
        assert arc.append_comicinfo(archive, tmp_path / "out.cbz", b"<ComicInfo/>") is None
    assert not (tmp_path / "out.cbz").exists()
