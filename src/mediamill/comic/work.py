"""One comic's work: plan what its ComicInfo and name should become, then do it safely.

:func:`plan` reads the archive and says what would change (fields added or changed, the new
name, a conversion) without touching anything; :func:`apply` does it: a rewrite through a
verified hidden temp file and an atomic replace, then a rename that never overwrites. A name
that is taken makes the file a duplicate (same pages) or a conflict (other pages), which can
be moved to a duplicates folder. The change is described (tags and names before and after)
so that it can be recorded and undone.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mediamill.comic import archive as arc
from mediamill.comic import comicinfo as ci
from mediamill.comic import rename as rn
from mediamill.comic import safe
from mediamill.comic.names import NameInfo, parse_path
from mediamill.comic.options import CONVERT_TO, RULE_FIELDS, WRITABLE, ComicError, Options


@dataclass(slots=True)
class Plan:
    """What would change for one comic."""

    relpath: str
    format: str
    pages: int
    parsed: NameInfo
    before: ci.ComicInfo | None
    after: ci.ComicInfo
    before_raw: bytes | None
    #: field -> [old, new] for every field the rules change
    changes: dict[str, list[str | None]] = field(default_factory=dict)
    new_relpath: str | None = None
    write_format: str | None = None
    #: why nothing is written although something differs (a RAR without ``convert``)
    blocked: str | None = None

    @property
    def rewrite(self) -> bool:
        return self.blocked is None and (bool(self.changes) or self.write_format != self.format)


def plan(
    root: Path, relpath: str, options: Options, archive: arc.ComicArchive | None = None
) -> Plan:
    """Read the comic at ``root/relpath`` (``archive``: already open) and work out what
    ``options`` would change."""
    if archive is None:
        with arc.ComicArchive(root / relpath) as opened:
            return plan(root, relpath, options, opened)
    raw = archive.comicinfo()
    pages = archive.page_count()
    fmt = archive.format
    before = ci.parse(raw) if raw is not None else None
    parsed = parse_path(relpath)
    after = before.copy() if before is not None else ci.ComicInfo()
    changes = _apply_rules(after, parsed, options)
    target_format = CONVERT_TO[options.convert] if options.convert else fmt
    result = Plan(relpath, fmt, pages, parsed, before, after, raw, changes, None, target_format)
    if target_format not in WRITABLE and changes:
        result.blocked = (
            f"{fmt.upper()} archives are never written: run with --set convert=cbz to write "
            "its tags into a .cbz"
        )
    problems = ci.validate(after)
    if problems and result.rewrite:
        raise ComicError(f"the ComicInfo.xml to write would not be valid: {problems[0]}")
    if options.rename:
        suffix = WRITABLE.get(target_format, PurePosixPath(relpath).suffix.lower())
        # ComicInfo's values, else what the name says (a field the rules do not write)
        values = rn.template_fields(_name_fields(parsed)) | rn.template_fields(after.as_dict())
        new = rn.render(options.rename, values, current=relpath, suffix=suffix)
        if new is not None and new != relpath:
            result.new_relpath = new
    elif result.rewrite and target_format != fmt:
        result.new_relpath = str(PurePosixPath(relpath).with_suffix(WRITABLE[target_format]))
    return result


def _name_fields(parsed: NameInfo) -> dict[str, str]:
    named = {
        "Series": parsed.series,
        "Number": parsed.issue,
        "Volume": parsed.volume,
        "Year": parsed.year,
        "Month": parsed.month,
        "Count": parsed.issue_count,
        "Title": parsed.title,
        "Format": parsed.format,
    }
    return {k: str(v) for k, v in named.items() if v is not None}


def _apply_rules(
    info: ci.ComicInfo, parsed: NameInfo, options: Options
) -> dict[str, list[str | None]]:
    values = {
        "Series": parsed.series,
        "Number": parsed.issue,
        "Volume": parsed.volume if parsed.volume and parsed.volume.isdigit() else None,
        "Year": str(parsed.year) if parsed.year else None,
        "Month": str(parsed.month) if parsed.month else None,
        "Count": str(parsed.issue_count) if parsed.issue_count else None,
        "Title": parsed.title,
        "Format": parsed.format,
    }
    changes: dict[str, list[str | None]] = {}
    for rule in options.rules:
        name = RULE_FIELDS[rule]
        new = values.get(name)
        old = info.fields.get(name)
        if new is None or old == new or (old and not options.overwrite):
            continue
        info.fields[name] = new
        changes[name] = [old, new]
    return changes


def describe(plan_: Plan) -> dict[str, Any]:
    """The plan as result data (also what a dry run reports)."""
    data: dict[str, Any] = {
        "format": plan_.format,
        "pages": plan_.pages,
        "comicinfo": plan_.after.as_dict() if plan_.before or plan_.rewrite else None,
        "parsed": {k: v for k, v in _parsed_dict(plan_.parsed).items() if v not in (None, False)},
        "changes": plan_.changes,
    }
    if plan_.new_relpath:
        data["rename"] = {"from": plan_.relpath, "to": plan_.new_relpath}
    if plan_.blocked:
        data["blocked"] = plan_.blocked
    return data


def _parsed_dict(info: NameInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in NameInfo.__slots__}


@dataclass(slots=True)
class Applied:
    """What :func:`apply` did: the action, where the file is now, and the change record."""

    action: str
    relpath: str
    stat: os.stat_result | None
    change: dict[str, Any] | None
    note: str | None = None


def apply(
    root: Path, plan_: Plan, options: Options, archive: arc.ComicArchive | None = None
) -> Applied:
    """Do what ``plan_`` says, safely; see the module docstring. ``archive``: the comic,
    already open (the one :func:`plan` read)."""
    path = root / plan_.relpath
    for stale in safe.stale_temps(path):
        stale.unlink(missing_ok=True)
    after_raw: bytes | None = plan_.before_raw
    current = plan_.relpath
    actions = []
    if plan_.rewrite:
        after_raw = ci.to_xml(plan_.after)
        current = _rewrite(root, plan_, after_raw, archive)
        actions.append("converted" if plan_.write_format != plan_.format else "tagged")
    note = None
    if plan_.new_relpath and plan_.new_relpath != current:
        try:
            moved, note = _rename(root, current, plan_.new_relpath, options)
        except (OSError, ComicError) as exc:
            if not actions:
                raise  # nothing changed yet: the item fails as it is
            # the file was retagged or converted already: that change must still be recorded
            # (its new path and stat, its history for undo), with why the rename did not happen
            moved, note = None, f"not renamed: {_cause(exc)}"
        if moved is not None:
            current = moved
            actions.append("renamed" if note is None else note)
        else:
            actions.append(str(note).split(":", 1)[0])
    if not actions:
        return Applied("unchanged", current, None, None)
    change = {
        "path_before": plan_.relpath,
        "path_after": current,
        "comicinfo_before": _text(plan_.before_raw),
        "comicinfo_after": _text(after_raw),
        "fields": plan_.changes,
    }
    return Applied("+".join(actions), current, os.stat(root / current), change, note)


def _cause(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "surrogateescape")


def _rewrite(root: Path, plan_: Plan, comicinfo: bytes, archive: arc.ComicArchive | None) -> str:
    """Write the new archive next to the old one, verify it, swap it in; the new relpath."""
    path = root / plan_.relpath
    if archive is None:
        with arc.ComicArchive(path) as opened:
            return _rewrite(root, plan_, comicinfo, opened)
    fmt = plan_.write_format or plan_.format
    if fmt == plan_.format:
        rewrite_comicinfo(path, comicinfo, archive)
        return plan_.relpath
    new_rel = str(PurePosixPath(plan_.relpath).with_suffix(WRITABLE[fmt]))
    with safe.temp_file(path) as tmp:
        members = _write(archive, tmp, fmt, comicinfo)
        safe.fsync_path(tmp)
        arc.verify(members, tmp, comicinfo)
        try:
            safe.move_new(tmp, root / new_rel)
        except FileExistsError:
            _finished_before(members, root / new_rel, comicinfo, new_rel)
    # the converted file is in place and verified: only now does the original go
    path.unlink()
    return new_rel


def rewrite_comicinfo(
    path: Path, comicinfo: bytes | None, archive: arc.ComicArchive | None = None
) -> os.stat_result:
    """Give the archive at ``path`` (``archive``: already open) this ComicInfo.xml (``None``:
    none), in its own format, through a verified temp file and an atomic replace; returns
    the new file's stat."""
    if archive is None:
        with arc.ComicArchive(path) as opened:
            return rewrite_comicinfo(path, comicinfo, opened)
    source = archive
    if source.format not in WRITABLE:
        raise ComicError(f"{source.format.upper()} archives are never written")
    fmt = source.format
    # the original's members, digested while they are copied (none on the fast path)
    members: dict[str, arc.Member] = {}
    prefix: list[int] = []

    def write(tmp: Path) -> None:
        fast = arc.append_comicinfo(source, tmp, comicinfo) if comicinfo else None
        if fast is not None:
            prefix.append(fast)
        else:
            members.update(_write(source, tmp, fmt, comicinfo))

    def check(tmp: Path) -> None:
        if prefix and comicinfo:
            arc.verify_prefix(source, tmp, prefix[0], comicinfo)
        else:
            arc.verify(members, tmp, comicinfo)

    return safe.replace_with(path, write, check)


def _write(
    source: arc.ComicArchive, tmp: Path, fmt: str, comicinfo: bytes | None
) -> dict[str, arc.Member]:
    if fmt == "zip":
        return arc.write_zip(source, tmp, comicinfo)
    return arc.write_7z(source, tmp, comicinfo)


def _finished_before(
    members: dict[str, arc.Member], target: Path, comicinfo: bytes, new_rel: str
) -> None:
    """Accept a conversion target that exists only if it is exactly this conversion's output
    (an earlier run stopped before removing the original); refuse anything else."""
    try:
        arc.verify(members, target, comicinfo)
    except arc.ArchiveError:
        raise ComicError(f"cannot convert: {new_rel} already exists (other content)") from None


def _rename(
    root: Path, current: str, wanted: str, options: Options
) -> tuple[str | None, str | None]:
    """Move ``current`` to ``wanted`` unless taken; (new relpath or None, note or None)."""
    src, dst = root / current, _inside(root, wanted)
    try:
        safe.rename_no_replace(src, dst)
        return wanted, None
    except FileExistsError:
        pass
    kind = "duplicate" if _same_pages(src, dst) else "conflict"
    note = f"{kind}: {wanted} exists"
    if not options.duplicates:
        return None, note
    folder = _inside(root, options.duplicates)
    for n in range(1, 1000):
        name = dst.name if n == 1 else f"{dst.stem} ({n}){dst.suffix}"
        target = folder / name
        try:
            safe.rename_no_replace(src, target)
        except FileExistsError:
            continue
        return target.relative_to(root).as_posix(), note
    return None, note


def _inside(root: Path, relpath: str) -> Path:
    """``root/relpath``, refusing anything that would leave the library root."""
    target = (root / relpath).resolve()
    base = _resolved(root)
    if target != base and base not in target.parents:
        raise ComicError(f"{relpath} is outside the library root")
    return root / target.relative_to(base)


@functools.lru_cache(maxsize=64)
def _resolved(root: Path) -> Path:
    """The library root with its links resolved (the same for every file of a job)."""
    return root.resolve()


def _same_pages(a: Path, b: Path) -> bool:
    try:
        with arc.ComicArchive(a) as first, arc.ComicArchive(b) as second:
            return _page_digests(first) == _page_digests(second)
    except arc.ArchiveError:
        return False


def _page_digests(archive: arc.ComicArchive) -> Sequence[str]:
    digests = archive.digests()
    return [digests[name].digest for name in archive.pages()]
