"""Shared operations: names a user sees for source libraries, secrets kept out of job records."""

from __future__ import annotations

from mediamill.ops import job_options, source_label


def test_source_libraries_get_readable_names_without_credentials() -> None:
    assert source_label("xtream+http://127.0.0.1:8080") == "xtream 127.0.0.1:8080"
    assert source_label("xtream+https://user:pass@tv.example:443") == "xtream tv.example:443"
    assert source_label("m3u+file:///srv/vod/list.m3u") == "m3u list.m3u"
    assert source_label("dispatcharr+https://d.example:9191") == "dispatcharr d.example:9191"


def test_credentials_never_reach_a_job_record() -> None:
    kept = job_options(
        {"output": "/vod", "username": "u", "password": "p", "token": "t", "workers": 2}
    )
    assert kept == {"output": "/vod", "workers": 2}
