"""libtiff's messages to the log, never to the terminal.

Pillow decodes compressed TIFF pixels through libtiff, whose default handlers print every
error and warning on stderr (``LZWDecode: Not enough data at scanline 12``, ``TIFFReadDirectory:
Warning, Unknown field with tag 65000``), past ``-q`` and any log level. Pillow itself only
silences the warnings, and only from its first decode on. :func:`route_messages` gives the
libtiff Pillow loaded handlers that write to the ``mediamill.libtiff`` log at debug level: what
a file holds is told by its result (Pillow raises on a broken image), the particulars are
there with ``-v``. Called once per process, wherever pixels may be decoded.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``void handler(const char *module, const char *fmt, va_list ap)``
HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
MESSAGE_BYTES = 1024


@functools.cache
def route_messages() -> bool:
    """Send libtiff's errors and warnings to the log (once per process); whether it could."""
    lib = _pillow_libtiff()
    if lib is None:
        log.debug("libtiff not found beside Pillow: its messages go where libtiff sends them")
        return False
    handlers = (("TIFFSetErrorHandler", _on_error), ("TIFFSetWarningHandler", _on_warning))
    for setter, handler in handlers:
        function = getattr(lib, setter)
        function.argtypes, function.restype = [HANDLER], ctypes.c_void_p
        function(handler)
    return True


def _message(module: bytes | None, fmt: bytes | None, args: int | None) -> str:
    """``module: message``, formatted by the C library when it can be (``fmt`` is printf's)."""
    text = (fmt or b"").decode("utf-8", "replace")
    if _vsnprintf is not None and fmt and args:
        buffer = ctypes.create_string_buffer(MESSAGE_BYTES)
        _vsnprintf(buffer, MESSAGE_BYTES, fmt, args)
        text = buffer.value.decode("utf-8", "replace")
    return f"{module.decode('utf-8', 'replace')}: {text}" if module else text


def _log_error(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
    log.debug("libtiff error: %s", _message(module, fmt, args))


def _log_warning(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
    log.debug("libtiff warning: %s", _message(module, fmt, args))


# at module level, so that they live as long as libtiff may call them
_on_error = HANDLER(_log_error)
_on_warning = HANDLER(_log_warning)


def _c_vsnprintf() -> Any:
    """libc's ``vsnprintf``, where a ``va_list`` argument is passed as a pointer (x86-64 and
    ARM64 on Linux and macOS); elsewhere ``None``, and messages stay unformatted."""
    import platform

    machines = ("x86_64", "amd64", "aarch64", "arm64")
    if sys.platform not in ("linux", "darwin") or platform.machine().lower() not in machines:
        return None
    try:
        libc = ctypes.CDLL(None)
        function = libc.vsnprintf
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


_vsnprintf = _c_vsnprintf()


def _pillow_libtiff() -> ctypes.CDLL | None:
    """The libtiff Pillow's ``_imaging`` module is linked to (its wheel's own copy, or the
    system's): found among the libraries this process has mapped, once Pillow is loaded."""
    from PIL import Image  # noqa: F401 - loads _imaging and, with it, libtiff

    for path in _mapped_libraries():
        if Path(path).name.startswith("libtiff"):
            try:
                return ctypes.CDLL(path)  # the library already loaded: same handlers
            except OSError:
                continue
    return None


def _mapped_libraries() -> list[str]:
    """Shared libraries loaded in this process: ``/proc/self/maps`` on Linux, else the
    copies Pillow's wheels ship beside it (``pillow.libs``, ``PIL/.dylibs``)."""
    maps = Path("/proc/self/maps")
    if maps.exists():
        found = []
        for line in maps.read_text(errors="replace").splitlines():
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            if path.startswith("/") and path not in found:
                found.append(path)
        return found
    import PIL

    here = Path(PIL.__file__).parent
    folders = (here.parent / "pillow.libs", here / ".dylibs")
    return [str(p) for folder in folders for p in folder.glob("libtiff*")]
