"""The JSON and image endpoints: query parameters in, (status, content type, body) out. Read-only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from myriad_learning.metrics import wilson
from myriad_learning.registry import ModelRegistry
from myriad_storage.store import DONE, LEASED, PENDING, Store

from . import images
from .jsonutil import dumps
from .live import LivePoller

Response = tuple[int, str, bytes]
JSON, PNG = "application/json", "image/png"
MAX_LIMIT = 200
MAX_SKIP = 1_000_000
RENDERS = ("depth", "segmentation", "grasp")


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int(q: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must lie in {lo}..{hi}, got {value}")
    return value


def _time(q: dict[str, str], name: str) -> datetime | None:
    raw = q.get(name, "")
    if not raw:
        return None
    try:
        t = datetime.fromtimestamp(float(raw), UTC)
    except (ValueError, OverflowError, OSError):
        try:
            t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, f"{name} must be ISO 8601 or epoch seconds, got {raw!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def attempt_filter(q: dict[str, str]) -> dict[str, Any]:
    """The attempts query of the samples filters: campaign, backend, label, outcome, object, source, since/until."""
    f: dict[str, Any] = {}
    window = {op: t for op, t in (("$gte", _time(q, "since")), ("$lt", _time(q, "until"))) if t}
    if window:  # first: SecantusDB routes on the first indexed field, and a time range is the narrowest
        f["created_at"] = window
    for param, path in (("campaign", "campaign"), ("backend", "backend"), ("outcome", "extra.outcome")):
        if q.get(param):
            f[path] = q[param]
    if q.get("object"):
        f["objects.name"] = q["object"]
    if q.get("source"):
        f["objects.source"] = q["source"]
    label = q.get("label", "")
    if label not in ("", "success", "failure", "none"):
        raise ApiError(
            400, f"label must be 'success', 'failure' or 'none' (no grasp executed), got {label!r}"
        )
    if label == "none":
        f["grasp_executed"] = False
    elif label:
        f["success"] = label == "success"
    return f


def _summary(doc: dict) -> dict:
    return {
        "attempt_key": doc.get("attempt_key"),
        "campaign": doc.get("campaign"),
        "item_id": doc.get("item_id"),
        "backend": doc.get("backend"),
        "success": doc.get("success"),
        "grasp_executed": doc.get("grasp_executed"),
        "outcome": (doc.get("extra") or {}).get("outcome"),
        "objects": [o.get("name") for o in doc.get("objects") or []],
        "lift_height": doc.get("lift_height"),
        "created_at": doc.get("created_at"),
        "images": doc.get("images") or {},
    }


class Api:
    """Routes API paths to Store queries; images stream from GridFS unchanged."""

    def __init__(self, store: Store, poller: LivePoller, world: str | None = None) -> None:
        self.store = store
        self.poller = poller
        self.world = world
        self.routes: dict[str, Callable[[dict[str, str]], Response]] = {
            "/api/overview": self.overview,
            "/api/samples": self.samples,
            "/api/attempt": self.attempt,
            "/api/image": self.image,
            "/api/render": self.render,
            "/api/work_items": self.work_items,
            "/api/models": self.models,
        }

    def handle(self, path: str, q: dict[str, str]) -> Response:
        """Answer one GET; errors become JSON with their status."""
        route = self.routes.get(path)
        try:
            if route is None:
                raise ApiError(404, f"no endpoint {path}")
            return route(q)
        except ApiError as exc:
            return exc.status, JSON, dumps({"error": str(exc)})

    def overview(self, q: dict[str, str]) -> Response:
        """Campaigns with counts, rates and timelines; back-end heartbeats (from the poller's snapshot)."""
        return 200, JSON, self.poller.snapshot()

    def samples(self, q: dict[str, str]) -> Response:
        """One page of attempt summaries, newest first; ``has_more`` instead of a (scanning) total count."""
        skip = _int(q, "skip", 0, 0, MAX_SKIP)
        limit = _int(q, "limit", 50, 1, MAX_LIMIT)
        docs = self.store.attempts(attempt_filter(q), skip=skip, limit=limit + 1)
        items = [_summary(d) for d in docs[:limit]]
        return 200, JSON, dumps({"items": items, "skip": skip, "limit": limit, "has_more": len(docs) > limit})

    def _attempt(self, q: dict[str, str]) -> dict:
        key = q.get("key", "")
        doc = self.store.attempt(key) if key else None
        if doc is None:
            raise ApiError(404, f"no attempt with key {key!r}")
        return doc

    def attempt(self, q: dict[str, str]) -> Response:
        """The full stored document of one attempt."""
        return 200, JSON, dumps(self._attempt(q))

    def image(self, q: dict[str, str]) -> Response:
        """The stored PNG of a GridFS file id, byte for byte."""
        raw = q.get("id", "")
        try:
            data = self.store.image(ObjectId(raw))
        except (InvalidId, TypeError, KeyError):
            raise ApiError(404, f"no image with id {raw!r}") from None
        return 200, PNG, data

    def render(self, q: dict[str, str]) -> Response:
        """A viewable PNG of an attempt: kind=depth | segmentation (colour-mapped) | grasp (drawn on pre_rgb)."""
        kind = q.get("kind", "")
        if kind not in RENDERS:
            raise ApiError(400, f"kind must be one of {', '.join(RENDERS)}, got {kind!r}")
        doc = self._attempt(q)
        name = {"depth": "pre_depth", "segmentation": "pre_segmentation", "grasp": "pre_rgb"}[kind]
        fid = (doc.get("images") or {}).get(name)
        if fid is None:
            raise ApiError(404, f"attempt {doc['attempt_key']!r} has no {name} image")
        data = self.store.image(fid)
        if kind == "depth":
            return 200, PNG, images.depth_png(data)
        if kind == "segmentation":
            return 200, PNG, images.segmentation_png(data)
        projector = images.world_projector(self.world)
        if projector is None or not doc.get("grasp"):
            raise ApiError(404, "no grasp or no world camera to project it with")
        return 200, PNG, images.grasp_png(data, doc["grasp"], projector)

    def work_items(self, q: dict[str, str]) -> Response:
        """One page of a campaign's work items (optionally of one state) and its latest state counts."""
        name = q.get("campaign", "")
        campaign = self.store.campaign(name) if name else None
        if campaign is None:
            raise ApiError(404, f"no campaign named {name!r}")
        state = q.get("state") or None
        if state not in (None, PENDING, LEASED, DONE):
            raise ApiError(400, f"state must be pending, leased or done, got {state!r}")
        skip = _int(q, "skip", 0, 0, MAX_SKIP)
        limit = _int(q, "limit", 50, 1, MAX_LIMIT)
        docs = self.store.work_items(name, state, skip=skip, limit=limit + 1)
        body = {
            "campaign": campaign,
            "counts": self.poller.progress(name),
            "now": datetime.now(UTC),
            "items": docs[:limit],
            "skip": skip,
            "limit": limit,
            "has_more": len(docs) > limit,
        }
        return 200, JSON, dumps(body)

    def models(self, q: dict[str, str]) -> Response:
        """Every stored grasp model's record (newest first, no weights), each with ``collected``: its results
        across all campaigns that ran strategy learned with it, success of executed grasps with a 95 % Wilson
        interval (``interval`` and ``success_rate`` null before any executed grasp)."""
        results = self.store.model_results()
        unused = {"attempts": 0, "executed": 0, "successes": 0, "campaigns": []}
        out = []
        for record in ModelRegistry(self.store).records():
            c = results.get(record["version"], unused)
            k, n = c["successes"], c["executed"]
            rate = {"success_rate": k / n if n else None, "interval": list(wilson(k, n)) if n else None}
            out.append({**record, "collected": {**c, **rate}})
        return 200, JSON, dumps(out)
