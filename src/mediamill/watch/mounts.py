"""Which file system a folder is on (from ``/proc/self/mountinfo``), and whether inotify can
see its changes: on network and FUSE file systems it sees only what this machine writes."""

from __future__ import annotations

import os

MOUNTINFO = "/proc/self/mountinfo"

#: file systems whose changes made elsewhere (another machine, the FUSE daemon's remote)
#: never reach inotify: a watcher polls them
REMOTE_TYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "9p", "ceph", "glusterfs",
        "afs", "ncpfs", "coda", "lustre", "gpfs", "beegfs", "virtiofs", "davfs", "fuse",
        "sshfs",
    }
)  # fmt: skip
#: FUSE types that are local disks (ntfs-3g, exfat-fuse): inotify works on them
LOCAL_FUSE = frozenset({"fuseblk"})


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def mount_of(path: str, mountinfo: str = MOUNTINFO) -> tuple[str, str] | None:
    """``(mount point, file system type)`` of the mount that holds ``path``, or ``None``
    when the mount table cannot be read (not Linux)."""
    real = os.path.realpath(path)
    best: tuple[str, str] | None = None
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right:
            continue
        point = _unescape(fields[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        # the last mount listed over a point is the one on top
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, right.split()[0])
    return best


def polling_reason(path: str, mountinfo: str = MOUNTINFO) -> str | None:
    """Why ``path`` must be polled (its file system and mount point), or ``None`` when
    native events see its changes."""
    found = mount_of(path, mountinfo)
    if found is None:
        return None
    point, fstype = found
    base = fstype.split(".", 1)[0]
    if fstype in LOCAL_FUSE or (base not in REMOTE_TYPES and fstype not in REMOTE_TYPES):
        return None
    return f"{fstype} at {point}: inotify does not see changes made by other machines"
