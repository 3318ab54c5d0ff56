"""Watched folders: native events or polling mark folders dirty, settled folders get an
incremental scan of their subtree, and the library's processors are queued for what is new
or changed (``watcher.py``); plus schedules (``schedule.py``)."""
