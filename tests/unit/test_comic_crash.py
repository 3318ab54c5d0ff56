"""SIGKILL at any point of a rewrite, conversion or rename never leaves a broken or missing comic.

Each case runs the real work in a child process that kills itself with SIGKILL at one
precise point (before or after the n-th call of a step: a member copied, a fsync, the
verification, the replace, the rename, the unlink). Whatever the point, the comic must then
exist, whole (every page byte for byte), with the old or the new ComicInfo.xml, and a second
run must finish the work and leave no temp file behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mediamill.comic import archive as arc
from mediamill.comic import comicinfo as ci
from mediamill.comic import work
from mediamill.comic.options import Options
from mediamill.testing.comics import write_comic

DATA = Path(__file__).parent.parent / "data" / "comic"

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from mediamill.comic import archive as arc, safe, work
    from mediamill.comic.options import Options

    owner, attr, nth, when = sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
    target = {"arc": arc, "safe": safe, "os": os}[owner]
    original = getattr(target, attr)
    calls = [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls[0] == nth and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(target, attr, wrapped)
    options = Options.from_mapping(dict(a.split("=", 1) for a in sys.argv[7:]))
    root = Path(sys.argv[1])
    work.apply(root, work.plan(root, sys.argv[2], options), options)
    """
)

KILL_POINTS = [
    ("arc", "_copy_range", 1, "before"),
    ("arc", "_copy_range", 3, "after"),
    ("os", "copy_file_range", 1, "after"),
    ("arc", "verify_prefix", 1, "before"),
    ("arc", "write_7z", 1, "after"),
    ("safe", "fsync_path", 1, "before"),
    ("safe", "fsync_path", 1, "after"),
    ("arc", "verify", 1, "after"),
    ("os", "replace", 1, "before"),
    ("os", "replace", 1, "after"),
    ("safe", "_renameat2", 1, "before"),
    ("safe", "_renameat2", 1, "after"),
    ("safe", "fsync_path", 2, "before"),
    ("os", "unlink", 1, "before"),
    ("os", "unlink", 1, "after"),
]

CASES = {
    # (file, options): retag + rename of a zip, retag of a 7z, conversion of a RAR
    "cbz": ("Saga/saga_007 (2013).cbz", {"rename": "{series} #{issue:03} ({year})"}),
    "cb7": ("Saga/Saga 008.cb7", {}),
    "cbr": ("Saga/Saga 009.cbr", {"convert": "cbz"}),
}


def _make(root: Path, case: str) -> Path:
    rel, _ = CASES[case]
    path = root / rel
    if case == "cbr":
        path.parent.mkdir(parents=True)
        shutil.copy(DATA / "rar5.cbr", path)
    else:
        write_comic(
            path, pages=6, seed=4, comicinfo="<ComicInfo><Title>Keep me</Title></ComicInfo>"
        )
    return path


def _comics(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _check_whole(path: Path, members: dict[str, arc.Member]) -> None:
    with arc.ComicArchive(path) as archive:
        found = archive.digests()
        raw = archive.comicinfo()
    for name, member in members.items():
        if not arc.is_comicinfo(name):
            assert found[name].digest == member.digest, f"{path.name}: {name} changed"
    if raw is not None:
        ci.parse(raw)  # the old or the new one, whole


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: f"{p[1]}#{p[2]}-{p[3]}")
def test_a_sigkill_at_any_point_leaves_the_old_or_the_new_comic_whole(
    tmp_path: Path, case: str, point: tuple[str, str, int, str]
) -> None:
    original = _make(tmp_path, case)
    with arc.ComicArchive(original) as archive:
        members = archive.digests()
    rel, options = CASES[case]
    args = [f"{k}={v}" for k, v in options.items()]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), rel, *map(str, point), *args],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert child.returncode in (0, -signal.SIGKILL), child.stderr.decode()[-2000:]
    folder = original.parent
    comics = _comics(folder)
    assert comics, "the comic is missing"
    for path in comics:
        _check_whole(path, members)
    # a second run finishes the work and cleans up
    survivor = rel if (tmp_path / rel).exists() else comics[0].relative_to(tmp_path).as_posix()
    opts = Options.from_mapping(options)
    work.apply(tmp_path, work.plan(tmp_path, survivor, opts), opts)
    assert not [p for p in os.listdir(folder) if p.startswith(".")], "a temp file was left"
    final = _comics(folder)
    assert final, "the comic is missing after the second run"
    for path in final:
        _check_whole(path, members)
    tagged = [p for p in final if p.suffix != ".cbr"]
    with arc.ComicArchive(tagged[-1]) as archive:
        raw = archive.comicinfo()
    assert raw is not None
    assert (ci.parse(raw).get("Series") or "").lower() == "saga"
