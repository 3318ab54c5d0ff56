"""Dirty folders and when they settle.

Events only mark a folder dirty (the folder itself, not each file). A folder is looked at
(its subtree walked: every file's size and mtime, summed in a digest) once no event came for
``settle - gap`` seconds, and again ``gap`` seconds later; when the two looks agree and no
event came in between, it is released for a scan. A file still being written moves its
size or mtime between looks, or sends events: it keeps its folder dirty.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Dirty:
    last_event: float
    look: str | None = None  # digest of the last look since the last event
    looked_at: float = 0.0


def parents(folder: str) -> list[str]:
    """``a/b/c`` → ``["", "a", "a/b"]``: every folder that holds it, root first."""
    if not folder:
        return []
    parts = folder.split("/")
    return ["", *("/".join(parts[:n]) for n in range(1, len(parts)))]


def common_folder(a: str, b: str) -> str:
    """The deepest folder holding both ``a`` and ``b`` (``""``: the root)."""
    common = []
    for x, y in zip(a.split("/"), b.split("/"), strict=False):
        if x != y:
            break
        common.append(x)
    return "/".join(common)


class Settler:
    """Dirty folders of one library, as paths from its root (``""`` is the root)."""

    def __init__(self, settle: float, gap: float | None = None) -> None:
        self.settle = settle
        self.gap = min(1.0, settle / 2) if gap is None else gap
        self._dirty: dict[str, _Dirty] = {}

    def __len__(self) -> int:
        return len(self._dirty)

    def mark(self, folder: str, now: float) -> bool:
        """Something changed in ``folder``. A dirty folder that holds it covers it (its scan
        walks the whole subtree); the dirty folders it holds are folded into it. ``True``
        when no dirty folder covered it (its first look is due sooner than any other)."""
        for held_path in (*parents(folder), folder):
            held = self._dirty.get(held_path)
            if held is not None:
                held.last_event, held.look = now, None
                return False
        prefix = folder + "/" if folder else ""
        for other in [f for f in self._dirty if f.startswith(prefix)]:
            del self._dirty[other]
        self._dirty[folder] = _Dirty(now)
        return True

    def looked(self, folder: str, digest: str, now: float) -> bool:
        """Record a look at ``folder``; ``True`` (and the folder is clean again) when it agrees
        with the look before it, with no event in between."""
        state = self._dirty.get(folder)
        if state is None:
            state = self._dirty[folder] = _Dirty(now - self.settle)
        if state.look == digest:
            del self._dirty[folder]
            return True
        state.look, state.looked_at = digest, now
        return False

    def due(self, now: float) -> list[str]:
        """Folders to look at now."""
        return [folder for folder, s in self._dirty.items() if self._when(s) <= now]

    def next_due(self) -> float | None:
        """When the next look is due (``None``: nothing is dirty)."""
        return min((self._when(s) for s in self._dirty.values()), default=None)

    def _when(self, state: _Dirty) -> float:
        if state.look is None:
            return state.last_event + self.settle - self.gap
        return max(state.looked_at + self.gap, state.last_event + self.settle)
