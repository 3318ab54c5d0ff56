"""The shared types: an outcome survives a trip through JSON (how Celery carries it), and a
processor may return its data alone or with an item update."""

from __future__ import annotations

import json
from typing import Any

from mediamill.core import ItemRef, ItemUpdate, Outcome, Processed, Status
from mediamill.processors.base import Processor, run_one


def test_an_outcome_with_an_item_update_survives_json() -> None:
    outcome = Outcome(
        7, Status.OK, {"pages": 12}, None, 0.25, "w1", ItemUpdate("b/new.cbz", 10, 20, None)
    )
    assert Outcome.from_dict(json.loads(json.dumps(outcome.as_dict()))) == outcome
    plain = Outcome(8, Status.FAILED, None, "broken", 0.1, "w2")
    assert Outcome.from_dict(json.loads(json.dumps(plain.as_dict()))) == plain


class _Mover(Processor):
    name = "mover"
    version = "1"

    def process(self, item: ItemRef) -> dict[str, Any] | Processed:
        if item.path.endswith(".keep"):
            return {"kept": True}
        return Processed({"moved": True}, ItemUpdate(path="new/" + item.path))


def test_run_one_takes_a_dict_or_processed() -> None:
    kept = run_one(_Mover(), ItemRef(1, "a.keep", "other"))
    moved = run_one(_Mover(), ItemRef(2, "b.cbz", "comic"))
    assert (kept.status, kept.data, kept.item_update) == (Status.OK, {"kept": True}, None)
    assert (moved.status, moved.data) == (Status.OK, {"moved": True})
    assert moved.item_update == ItemUpdate(path="new/b.cbz")
