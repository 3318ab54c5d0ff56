"""Comic tag + rename throughput: ``mediamill run comic`` against comictagger's CLI.

On one generated library of .cbz archives (20 real JPEG pages each, names in the styles
collectors have: ``Saga 007 (2013) (Digital) (Group).cbz``, ``saga_v2_#007.cbz``, ...) it
times, each as a child process on its own copy of the library:

(a) ``mediamill run comic DIR -q --set rename=TEMPLATE`` into a fresh SQLite catalog
    (start-up, scan, tagging from names, renames and catalog writes included);
(b) the same command again on the unchanged result: it must touch no file and take at most
    10% of (a);
(c) comictagger (1.5.5 from PyPI, in its own venv under ``--tools``), doing the same work:
    ``comictagger -s -t CR -f -R DIR`` (ComicInfo from the file name) then
    ``comictagger -r -t CR -R DIR`` (rename by the same template).

It prints files/s of each, mediamill's ratio to comictagger (target: at least 3x) and a last
``SUMMARY {json}`` line. Run: ``.venv/bin/python bench/comic.py [--files 2000 --pages 20]``.
comictagger is installed with ``--no-deps`` and its dependencies minus PyICU (whose build
needs ICU's headers; comictagger works without it) on first use.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from _common import (
    isolated_env,
    machine,
    print_summary,
    print_table,
    run_in_temp,
    run_measured,
    venv_bin,
    verdict,
)
from PIL import Image, ImageDraw

TEMPLATE = "{series} #{issue} ({year})"  # comictagger's default rename template
TARGET_RATIO = 3.0
RERUN_SHARE = 0.10
COMICTAGGER = "comictagger==1.5.5"
COMICTAGGER_DEPS = (
    "beautifulsoup4>=4.1",
    "soupsieve",
    "importlib-metadata>=3.3.0",
    "zipp",
    "natsort>=8.1.0",
    "pathvalidate",
    "pillow>=9.1.0",
    "pycountry",
    "rapidfuzz>=2.12.0",
    "requests==2.*",
    "charset-normalizer",
    "idna",
    "urllib3",
    "certifi",
    "text2digits",
    "typing-extensions",
    "wordninja",
)
SERIES = [
    "Saga",
    "Paper Girls",
    "The Walking Dead",
    "Black Science",
    "East of West",
    "Monstress",
    "Descender",
    "Invincible",
    "Y - The Last Man",
    "Sweet Tooth",
]
STYLES = (
    "{series} {issue:03d} ({year}) (Digital) (Zone-Empire).cbz",
    "{series} #{issue:03d} ({year}).cbz",
    "{underscored}_v2_#{issue:03d}.cbz",
    "{series} - Chapter {issue}.cbz",
)


def _page(rng: random.Random, size: tuple[int, int]) -> bytes:
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x, y, x + rng.randrange(10, 120), y + rng.randrange(10, 160)), fill=colour)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def make_library(root: Path, files: int, pages: int, seed: int = 1) -> int:
    """``files`` archives in one folder per series; returns the bytes written."""
    rng = random.Random(seed)
    shared = [_page(rng, (480, 720)) for _ in range(pages)]
    total = 0
    for n in range(files):
        series = SERIES[n % len(SERIES)]
        issue = n // len(SERIES) + 1
        name = STYLES[n % len(STYLES)].format(
            series=series,
            issue=issue,
            year=2000 + issue % 20,
            underscored=series.replace(" ", "_"),
        )
        folder = root / series
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(folder / name, "w") as zf:
            zf.writestr("000-cover.jpg", _page(rng, (160, 240)))  # every archive differs
            for number, data in enumerate(shared[1:], start=1):
                zf.writestr(f"{number:03d}.jpg", data)
        total += (folder / name).stat().st_size
    return total


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.join(dirpath, name)] = (st.st_ino, st.st_mtime_ns)
    return found


def comictagger_bin(tools: Path) -> Path:
    """comictagger in its own venv (installed on first use)."""
    venv = tools / "comictagger-venv"
    binary = venv / "bin" / "comictagger"
    if binary.exists():
        return binary
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-deps"]
    subprocess.run([*pip, COMICTAGGER, *COMICTAGGER_DEPS], check=True)
    return binary


def count_tagged(root: Path) -> int:
    tagged = 0
    for path in root.rglob("*.cbz"):
        with zipfile.ZipFile(path) as zf:
            tagged += any(n.lower() == "comicinfo.xml" for n in zf.namelist())
    return tagged


def bench(args: argparse.Namespace, base: Path) -> int:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"machine: {machine()}  (uptime: {uptime.strip()})")
    source = base / "source"
    size = make_library(source, args.files, args.pages)
    print(f"library: {args.files} archives of {args.pages} pages, {size / 1e6:.0f} MB")
    ours, theirs = base / "mediamill", base / "comictagger"
    shutil.copytree(source, ours)
    shutil.copytree(source, theirs)
    shutil.rmtree(source)
    # the copies' 1.9 GB of dirty pages would otherwise be written back during the first
    # timed run (mediamill's), slowing its fsyncs and nobody else's: every tool starts clean
    os.sync()

    env = isolated_env(base / "home")
    env["MEDIAMILL_DB"] = f"sqlite:///{base / 'catalog.db'}"
    cmd = [venv_bin("mediamill"), "run", "comic", str(ours), "-q", "--set", f"rename={TEMPLATE}"]
    first = run_measured(cmd, env=env, cwd=base)
    before = snapshot(ours)
    rerun = run_measured(cmd, env=env, cwd=base)
    touched = sum(1 for p, s in snapshot(ours).items() if before.get(p) != s)

    binary = comictagger_bin(Path(args.tools))
    ct_env = dict(os.environ, HOME=str(base / "ct-home"))
    config = ["--config", str(base / "ct-config")]
    tag = run_measured(
        [binary, "-s", "-t", "CR", "-f", "-R", *config, str(theirs)], env=ct_env, cwd=base
    )
    ren = run_measured([binary, "-r", "-t", "CR", "-R", *config, str(theirs)], env=ct_env, cwd=base)
    ct_seconds = tag.seconds + ren.seconds

    ours_rate = args.files / first.seconds
    theirs_rate = args.files / ct_seconds
    ratio = ours_rate / theirs_rate
    share = rerun.seconds / first.seconds
    print_table(
        ["run", "seconds", "files/s", "tagged"],
        [
            [
                "mediamill tag + rename",
                f"{first.seconds:.2f}",
                f"{ours_rate:,.0f}",
                count_tagged(ours),
            ],
            ["mediamill unchanged re-run", f"{rerun.seconds:.2f}", "", f"{touched} touched"],
            [
                "comictagger -s -f, then -r",
                f"{ct_seconds:.2f}",
                f"{theirs_rate:,.0f}",
                count_tagged(theirs),
            ],
        ],
    )
    ok_ratio = ratio >= TARGET_RATIO
    ok_rerun = share <= RERUN_SHARE and touched == 0
    print(f"mediamill / comictagger: {ratio:.1f}x (target >= {TARGET_RATIO}x) {verdict(ok_ratio)}")
    print(
        f"re-run: {share:.1%} of the first run, {touched} files touched "
        f"(target <= 10%, 0) {verdict(ok_rerun)}"
    )
    print_summary(
        {
            "files": args.files,
            "pages": args.pages,
            "mediamill_files_per_s": round(ours_rate, 1),
            "comictagger_files_per_s": round(theirs_rate, 1),
            "ratio": round(ratio, 2),
            "rerun_share": round(share, 4),
            "rerun_touched": touched,
            "load1": machine()["load1"],
        }
    )
    return 0 if ok_ratio and ok_rerun else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--dir", help="where to make the temp folder")
    parser.add_argument("--tools", default=str(Path.home() / ".cache" / "mediamill-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    return run_in_temp("comic", parser.parse_args(), bench)


if __name__ == "__main__":
    sys.exit(main())
