"""JSON encoding of database documents (datetimes as ISO 8601 UTC, always with milliseconds so that their
strings sort as their times; ObjectIds as hex strings)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        t = value if value.tzinfo else value.replace(tzinfo=UTC)
        return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")  # BSON: ms
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """UTF-8 JSON of ``value``; NaN and infinities become null (browsers reject them)."""
    return json.dumps(_finite(value), default=_default, separators=(",", ":")).encode()
