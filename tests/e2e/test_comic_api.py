"""Comic jobs over the HTTP API: process a library, then undo the job."""

from __future__ import annotations

from pathlib import Path

from mediamill.comic import archive as arc
from mediamill.testing.comics import write_comic
from tests.helpers.server import Server


def test_a_comic_job_renames_and_tags_and_the_api_undoes_it(server: Server, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    for n in (1, 2, 3):
        write_comic(lib / "Saga" / f"saga_{n:02d}.cbz", pages=2, seed=n)
    with server.client() as client:
        assert (
            client.post("/api/libraries", json={"path": str(lib), "name": "comics"}).status_code
            == 201
        )
        created = client.post(
            "/api/jobs",
            json={
                "processor": "comic",
                "library": "comics",
                "options": {"rename": "{series} #{issue:03}"},
            },
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        done = server.wait_job(job_id, {"completed"})
        assert done["succeeded"] == 3, done
        assert sorted(p.name for p in (lib / "Saga").iterdir()) == [
            "saga #001.cbz",
            "saga #002.cbz",
            "saga #003.cbz",
        ]
        refused = client.post("/api/jobs/nope/undo")
        assert refused.status_code == 404
        preview = client.post(f"/api/jobs/{job_id}/undo", params={"dry_run": "true"})
        assert preview.status_code == 200, preview.text
        assert preview.json()["undone"] == 3
        assert (lib / "Saga" / "saga #001.cbz").exists()
        undone = client.post(f"/api/jobs/{job_id}/undo").json()
        assert undone["undone"] == 3
        assert {c["action"] for c in undone["changes"]} == {"retag+rename"}
    assert sorted(p.name for p in (lib / "Saga").iterdir()) == [
        "saga_01.cbz",
        "saga_02.cbz",
        "saga_03.cbz",
    ]
    with arc.ComicArchive(lib / "Saga" / "saga_01.cbz") as archive:
        assert archive.comicinfo() is None
