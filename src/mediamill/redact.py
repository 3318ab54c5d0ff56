"""Secret options: kept out of every job record, API answer and event, at any depth.

Keys are removed, not masked, so nothing about a secret (not even its length) is stored.

Processors mark their secret options (``Processor.secret_options``, dotted paths such as
strm's ``refresh.token``) and sources theirs (``sources.SECRET_OPTIONS``: Xtream's
``username``/``password``, Dispatcharr's ``token``). A key with a secret option's name is
removed wherever it stands in a job's options (a nested mapping, a list of mappings), so a
secret tucked one level deeper than declared is not stored either.

The run that was given a secret still uses it: :func:`split_secrets` hands it back apart,
kept in that process's memory only, and :func:`with_secrets` puts it back into the options the
processor is built with. A job run by another process (the server's coordinator, a resumed
job) has no secret: it reads it from the environment (e.g. ``MEDIAMILL_REFRESH_TOKEN``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any


def secret_names(processor: type[Any] | None = None) -> frozenset[str]:
    """The option names that are secret for a job of ``processor`` (a Processor class):
    the last part of each of its ``secret_options`` and every source's secret options."""
    from mediamill.sources import SECRET_OPTIONS

    names = {name for family in SECRET_OPTIONS.values() for name in family}
    for path in getattr(processor, "secret_options", ()):
        names.add(str(path).rsplit(".", 1)[-1])
    return frozenset(names)


@lru_cache(maxsize=64)
def job_secret_names(processor: str) -> frozenset[str]:
    """:func:`secret_names` for a job of the processor called ``processor``. A processor
    named ``module:Class`` is looked at only when its module is already imported: reading
    a job never imports a module its record names."""
    from mediamill.processors import base as registry

    cls = None
    if ":" not in processor or processor.partition(":")[0] in sys.modules:
        try:
            cls = registry.get(processor)
        except Exception:  # noqa: BLE001 - an unknown processor has no declared secrets
            cls = None
    return secret_names(cls)


def processor_secrets(processor: type[Any], options: Mapping[str, Any]) -> Any:
    """The processor's own secret options found in ``options`` (for :func:`with_secrets`),
    or ``None``."""
    names = {str(path).rsplit(".", 1)[-1] for path in getattr(processor, "secret_options", ())}
    return split_secrets(options, names)[1] if names else None


def split_secrets(value: Any, names: Iterable[str]) -> tuple[Any, Any]:
    """``(value without its secrets, the secrets alone)``: mappings keep their shape in both;
    ``None`` in the second when there is no secret in ``value``."""
    names = frozenset(names)
    if isinstance(value, Mapping):
        kept: dict[str, Any] = {}
        secret: dict[str, Any] = {}
        for key, item in value.items():
            if key in names:
                secret[key] = item
                continue
            kept[key], inner = split_secrets(item, names)
            if inner is not None:
                secret[key] = inner
        return kept, (secret or None)
    if isinstance(value, list | tuple):
        pairs = [split_secrets(item, names) for item in value]
        hidden = [inner for _kept, inner in pairs]
        return [k for k, _s in pairs], (hidden if any(h is not None for h in hidden) else None)
    return value, None


def strip_secrets(value: Any, names: Iterable[str]) -> Any:
    """``value`` without any key named in ``names``, at any depth."""
    return split_secrets(value, names)[0]


def with_secrets(value: Any, secrets: Any) -> Any:
    """``value`` with the ``secrets`` :func:`split_secrets` took out put back."""
    if secrets is None:
        return value
    if isinstance(value, Mapping) and isinstance(secrets, Mapping):
        merged = dict(value)
        for key, inner in secrets.items():
            merged[key] = with_secrets(merged[key], inner) if key in merged else inner
        return merged
    if isinstance(value, list) and isinstance(secrets, list) and len(value) == len(secrets):
        return [with_secrets(v, s) for v, s in zip(value, secrets, strict=True)]
    return value
