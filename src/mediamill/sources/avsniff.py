"""Whether FFmpeg reads a file as audio or video, for files that neither their name nor
their first bytes place: the scan asks it only about new and changed files it could not
place otherwise (``.mp2``, ``.tak``, ``.w64``, ... whatever FFmpeg can open)."""

from __future__ import annotations

#: bytes FFmpeg may read to recognise a format and find its streams: enough for every
#: header, while a multi-gigabyte unknown file costs no more than a small one
_PROBE_BYTES = "65536"
#: FFmpeg "opens" text (tty) and bare images (*_pipe, image2); neither is audio or video
_NOT_AV_FORMATS = frozenset({"tty", "image2"})
_TEXT_CONTROLS = frozenset(range(32)) - {9, 10, 13}


def av_kind(abspath: str, head: bytes) -> str | None:
    """ "audio" or "video" when FFmpeg opens ``abspath`` and finds a playable stream."""
    if _looks_like_text(head):
        return None  # .nfo, .cue, .txt, .srt, .m3u: FFmpeg would call them tty "video"
    import av

    try:
        container = av.open(
            abspath,
            options={"probesize": _PROBE_BYTES, "formatprobesize": _PROBE_BYTES},
            metadata_errors="ignore",
        )
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return None
    with container:
        name = container.format.name
        if name in _NOT_AV_FORMATS or name.endswith("_pipe"):
            return None
        kinds = {_stream_kind(stream) for stream in container.streams}
    return "video" if "video" in kinds else "audio" if "audio" in kinds else None


def _stream_kind(stream: object) -> str | None:
    context = getattr(stream, "codec_context", None)
    kind = getattr(stream, "type", None)
    if context is None:
        return None
    if kind == "audio" and context.sample_rate and context.channels:
        return "audio"
    attached = int(getattr(stream, "disposition", 0)) & 0x400  # AV_DISPOSITION_ATTACHED_PIC
    if kind == "video" and context.width and context.height and not attached:
        return "video"
    return None


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # not just a character cut at the end of the head
            return False
        text = head[: error.start].decode("utf-8")
    return not any(ord(char) in _TEXT_CONTROLS for char in text)
