"""All MongoDB access of Myriad: campaigns, work-item leases, attempts with GridFS images, heartbeats.

Schema (one database per deployment):
- ``campaigns``: name (unique), template, seed, target, items_sha256, created_at, finished_at.
- ``work_items``: campaign, index, item_id (unique, ``f"{campaign}/{index:06d}"``), seed, params,
  state (pending | leased | done), lease_owner, lease_expires, claims, attempt_key, done_at.
- ``attempts``: one document per attempt, attempt_key unique, images ``{name: GridFS file id}``, created_at.
- GridFS bucket ``images`` (PNG), metadata ``{attempt_key, name, campaign}``.
- ``backends``: one heartbeat document per backend id, updated_at.

Lease expiry compares against the clock of the claiming client (all back ends of a deployment share a host
or synchronised clocks). Transactions are not used: the attempt insert is idempotent on attempt_key and
the work item is marked done after it, so a crash in between is repaired by the retried store.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

import gridfs
import pymongo
from bson import ObjectId
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError

PENDING, LEASED, DONE = "pending", "leased", "done"
IMAGE_BUCKET = "images"
CLAIM_WINDOW = (
    256  # SecantusDB scans every match of a query: claims search index windows, not the whole campaign
)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_PASSWORD_RE = re.compile(r"(://[^:/@]*):([^@/]*)@")
_F = TypeVar("_F", bound=Callable[..., Any])


def mask_uri(uri: str) -> str:
    """Return ``uri`` with any password replaced by ``***``."""
    return _PASSWORD_RE.sub(r"\1:***@", uri)


class StorageUnavailable(RuntimeError):
    """The database server could not be reached (within the client's timeout)."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = mask_uri(uri)
        self.reason = reason
        super().__init__(f"MongoDB not reachable at {self.uri}: {reason}")


def _now() -> datetime:
    return datetime.now(UTC)


def _guarded(fn: _F) -> _F:
    """Translate pymongo connection failures into StorageUnavailable (with the masked URI)."""

    @functools.wraps(fn)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except ConnectionFailure as exc:
            reason = str(exc).replace(self._password, "***") if self._password else str(exc)
            raise StorageUnavailable(self.uri, reason[:400]) from exc

    return wrapper  # type: ignore[return-value]


class Store:
    """Typed access to the Myriad database; thread-safe (one pymongo client, pooled connections)."""

    def __init__(self, uri: str, database: str = "myriad", server_timeout_ms: int = 5000) -> None:
        if not uri:
            raise ValueError("Store needs a MongoDB URI such as mongodb://127.0.0.1:27117/, got ''")
        self.uri = uri
        self.masked_uri = mask_uri(uri)
        m = _PASSWORD_RE.search(uri)
        self._password = m.group(2) if m and m.group(2) else ""
        self.client: pymongo.MongoClient = pymongo.MongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=server_timeout_ms,
            connectTimeoutMS=server_timeout_ms,
            socketTimeoutMS=max(4 * server_timeout_ms, 20000),
        )
        self.db = self.client[database]
        self.bucket = gridfs.GridFSBucket(self.db, IMAGE_BUCKET)
        self._indexed = False

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_guarded
    def ping(self) -> None:
        """Raise StorageUnavailable unless the server answers within the timeout."""
        self.client.admin.command("ping")

    @_guarded
    def ensure_indexes(self) -> None:
        """Create all indexes (idempotent)."""
        db = self.db
        db.campaigns.create_index("name", unique=True)
        db.work_items.create_index("item_id", unique=True)
        db.work_items.create_index([("campaign", 1), ("state", 1), ("index", 1)])
        db.work_items.create_index([("campaign", 1), ("index", 1)])
        db.work_items.create_index([("campaign", 1), ("state", 1), ("lease_expires", 1)])
        db.attempts.create_index("attempt_key", unique=True)
        db.attempts.create_index([("campaign", 1), ("success", 1)])
        db.attempts.create_index([("campaign", 1), ("item_id", 1)])
        db.attempts.create_index("backend")
        db.attempts.create_index("created_at")
        db.attempts.create_index([("campaign", 1), ("created_at", -1)])
        db[f"{IMAGE_BUCKET}.files"].create_index("metadata.attempt_key")
        db.backends.create_index("backend", unique=True)
        self._indexed = True

    def _ensure(self) -> None:
        if not self._indexed:
            self.ensure_indexes()

    # -- campaigns -------------------------------------------------------------------------------------

    @_guarded
    def create_campaign(
        self, name: str, items: list[dict], template: dict | None = None, seed: int | None = None
    ) -> dict:
        """Create a campaign with one pending work item per parameter dict (each with an int ``seed`` >= 0).

        Idempotent: the same name with identical items returns the existing campaign (completing any work
        items a crashed earlier call did not insert); the same name with different items raises ValueError.
        """
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(f"campaign name must match {_NAME_RE.pattern}, got {name!r}")
        for i, item in enumerate(items):
            seed_ok = isinstance(item, dict) and type(item.get("seed")) is int and 0 <= item["seed"] < 2**63
            if not seed_ok:
                raise ValueError(
                    f"campaign {name!r}: item {i} must be a dict with an int 'seed' in 0..2**63-1, got {item!r}"
                )
        self._ensure()
        digest = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()
        doc = {
            "name": name,
            "template": template,
            "seed": seed,
            "target": len(items),
            "items_sha256": digest,
            "claim_floor": 0,
            "release_seq": 0,
            "created_at": _now(),
            "finished_at": None,
        }
        try:
            self.db.campaigns.insert_one(doc)
        except DuplicateKeyError:
            existing = self.db.campaigns.find_one({"name": name}, {"_id": False})
            if existing["items_sha256"] != digest:
                raise ValueError(
                    f"campaign {name!r} already exists with different items ({existing['target']} stored, "
                    f"{len(items)} given); use another name"
                ) from None
        if self.db.work_items.count_documents({"campaign": name}) < len(items):
            self._insert_items(name, items)
        return self.campaign(name)

    def _insert_items(self, name: str, items: list[dict], chunk: int = 1000) -> None:
        now = _now()
        docs = [
            {
                "campaign": name,
                "index": i,
                "item_id": f"{name}/{i:06d}",
                "seed": item["seed"],
                "params": item,
                "state": PENDING,
                "lease_owner": None,
                "lease_expires": None,
                "claims": 0,
                "attempt_key": None,
                "created_at": now,
            }
            for i, item in enumerate(items)
        ]
        for start in range(0, len(docs), chunk):
            try:
                self.db.work_items.insert_many(docs[start : start + chunk], ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise

    @_guarded
    def campaign(self, name: str) -> dict | None:
        """The campaign document, or None."""
        return self.db.campaigns.find_one({"name": name}, {"_id": False})

    @_guarded
    def campaigns(self) -> list[dict]:
        """All campaigns, oldest first."""
        return list(self.db.campaigns.find({}, {"_id": False}).sort("created_at", 1))

    @_guarded
    def finish_campaign(self, name: str) -> None:
        """Set finished_at (once); KeyError if there is no such campaign."""
        r = self.db.campaigns.update_one(
            {"name": name, "finished_at": None}, {"$set": {"finished_at": _now()}}
        )
        if r.matched_count == 0 and self.campaign(name) is None:
            raise KeyError(f"no campaign named {name!r}")

    # -- leases ----------------------------------------------------------------------------------------

    @_guarded
    def claim(self, campaign: str, backend: str, lease_s: float) -> dict | None:
        """Atomically lease an item to ``backend``: the lowest-index expired lease, else the lowest pending.

        Pending items are searched in index windows from the campaign's ``claim_floor`` (a lower bound of
        the pending indexes: raised by claims unless a release intervened, lowered by release), so a claim
        costs the same in a campaign of any size. Returns the leased work item, or None.
        """
        now = _now()
        update = {
            "$set": {
                "state": LEASED,
                "lease_owner": backend,
                "lease_expires": now + timedelta(seconds=lease_s),
                "leased_at": now,
            },
            "$inc": {"claims": 1},
        }
        item = self._take({"campaign": campaign, "state": LEASED, "lease_expires": {"$lt": now}}, update)
        if item is not None:
            return item
        c = self.db.campaigns.find_one(
            {"name": campaign}, {"target": True, "claim_floor": True, "release_seq": True}
        )
        if c is None:
            return None
        floor, seq = c.get("claim_floor", 0), c.get("release_seq", 0)
        lo = floor
        while lo < c["target"]:
            window = {"campaign": campaign, "state": PENDING, "index": {"$gte": lo, "$lt": lo + CLAIM_WINDOW}}
            item = self._take(window, update)
            if item is not None:
                break
            lo += CLAIM_WINDOW
        if lo > floor:
            self.db.campaigns.update_one(
                {"name": campaign, "release_seq": seq}, {"$max": {"claim_floor": lo}}
            )
        return item

    def _take(self, query: dict, update: dict) -> dict | None:
        """Lease the lowest-index item matching ``query``: find, then a compare-and-set update_one on it.

        (SecantusDB 0.7's findAndModify costs ~40 ms on a few thousand documents; find + update_one ~3 ms.)
        """
        while True:
            cand = self.db.work_items.find_one(query, {"item_id": True}, sort=[("index", 1)])
            if cand is None:
                return None
            # by item_id only: SecantusDB plans {campaign, state, item_id} on the campaign index (a scan)
            cas = {k: v for k, v in query.items() if k not in ("campaign", "index")}
            cas["item_id"] = cand["item_id"]
            if self.db.work_items.update_one(cas, update).modified_count == 1:
                return self.db.work_items.find_one({"item_id": cand["item_id"]}, {"_id": False})

    @_guarded
    def renew(self, item_id: str, backend: str, lease_s: float) -> bool:
        """Extend the lease if ``backend`` still holds it; False otherwise."""
        r = self.db.work_items.update_one(
            {"item_id": item_id, "state": LEASED, "lease_owner": backend},
            {"$set": {"lease_expires": _now() + timedelta(seconds=lease_s)}},
        )
        return r.matched_count == 1

    @_guarded
    def release(self, item_id: str, backend: str) -> bool:
        """Put an item leased by ``backend`` back to pending; False if it does not hold the lease."""
        item = self.db.work_items.find_one({"item_id": item_id}, {"campaign": True, "index": True})
        r = self.db.work_items.update_one(
            {"item_id": item_id, "state": LEASED, "lease_owner": backend},
            {"$set": {"state": PENDING, "lease_owner": None, "lease_expires": None}},
        )
        if r.modified_count == 0:
            return False
        self.db.campaigns.update_one(
            {"name": item["campaign"]}, {"$min": {"claim_floor": item["index"]}, "$inc": {"release_seq": 1}}
        )
        return True

    @_guarded
    def progress(self, campaign: str, outcomes: bool = False) -> dict:
        """Counts: target, pending, leased (incl. expired), done, successes, attempts, executed (attempts that
        executed a grasp: the label's denominator) and, if asked, outcomes (attempts by extra.outcome)."""
        c = self.campaign(campaign)
        out = {"target": c["target"] if c else 0, PENDING: 0, LEASED: 0, DONE: 0}
        for row in self.db.work_items.aggregate(
            [{"$match": {"campaign": campaign}}, {"$group": {"_id": "$state", "n": {"$sum": 1}}}]
        ):
            out[row["_id"]] = row["n"]
        out["successes"] = self.db.attempts.count_documents({"campaign": campaign, "success": True})
        out["attempts"] = self.db.attempts.count_documents({"campaign": campaign})
        out["executed"] = self.db.attempts.count_documents(
            {"campaign": campaign, "grasp_executed": {"$ne": False}}
        )
        if outcomes:
            by = [{"$match": {"campaign": campaign}}, {"$group": {"_id": "$extra.outcome", "n": {"$sum": 1}}}]
            out["outcomes"] = {str(row["_id"]): row["n"] for row in self.db.attempts.aggregate(by)}
        return out

    @_guarded
    def work_items(
        self, campaign: str, state: str | None = None, skip: int = 0, limit: int = 0
    ) -> list[dict]:
        """Work items of a campaign by index, optionally of one state."""
        q: dict[str, Any] = {"campaign": campaign}
        if state is not None:
            q["state"] = state
        return list(self.db.work_items.find(q, {"_id": False}).sort("index", 1).skip(skip).limit(limit))

    # -- attempts --------------------------------------------------------------------------------------

    @_guarded
    def store_attempt(self, record: dict, images: dict[str, bytes]) -> tuple[str, bool]:
        """Store an attempt and its PNG images, mark its work item done; idempotent on attempt_key.

        Returns (attempt_key, stored): stored is False when an attempt with that key already existed
        (then nothing is uploaded, and a lost insert race deletes the files it uploaded).
        """
        key = record.get("attempt_key")
        for field in ("attempt_key", "campaign", "item_id"):
            if not isinstance(record.get(field), str) or not record[field]:
                raise ValueError(
                    f"attempt record needs a non-empty string {field!r}, got {record.get(field)!r}"
                )
        self._ensure()
        if self.db.attempts.find_one({"attempt_key": key}, {"_id": True}) is not None:
            self._mark_done(record)
            return key, False
        file_ids: dict[str, ObjectId] = {}
        try:
            for name, data in images.items():
                meta = {"attempt_key": key, "name": name, "campaign": record["campaign"]}
                file_ids[name] = self.bucket.upload_from_stream(f"{key}/{name}.png", data, metadata=meta)
            doc = {**record, "images": file_ids, "created_at": _now()}
            self.db.attempts.insert_one(doc)
        except DuplicateKeyError:
            existing = self.db.attempts.find_one({"attempt_key": key}, {"images": True})
            if existing and existing.get("images") == file_ids:  # our own insert, retried by the driver
                self._mark_done(record)
                return key, True
            self._delete_files(file_ids.values())
            self._mark_done(record)
            return key, False
        except BaseException:
            with contextlib.suppress(Exception):  # the original error matters; orphans are collectable
                self._delete_files(file_ids.values())
            raise
        self._mark_done(record)
        return key, True

    def _delete_files(self, ids: Any) -> None:
        for fid in ids:
            try:
                self.bucket.delete(fid)
            except gridfs.errors.NoFile:
                pass

    def _mark_done(self, record: dict) -> None:
        self.db.work_items.update_one(
            {"item_id": record["item_id"], "state": {"$ne": DONE}},
            {
                "$set": {
                    "state": DONE,
                    "attempt_key": record["attempt_key"],
                    "done_at": _now(),
                    "done_by": record.get("backend"),
                    "lease_expires": None,
                }
            },
        )

    @_guarded
    def attempts(
        self,
        filter: dict | None = None,
        skip: int = 0,
        limit: int = 0,
        sort: list[tuple[str, int]] | None = None,
    ) -> list[dict]:
        """Attempt documents matching ``filter`` (default sort: newest first), without ``_id``."""
        cur = self.db.attempts.find(filter or {}, {"_id": False})
        return list(cur.sort(sort or [("created_at", -1)]).skip(skip).limit(limit))

    @_guarded
    def count_attempts(self, filter: dict | None = None) -> int:
        """Number of attempts matching ``filter``."""
        return self.db.attempts.count_documents(filter or {})

    @_guarded
    def attempt(self, key: str) -> dict | None:
        """The attempt with this key, or None."""
        return self.db.attempts.find_one({"attempt_key": key}, {"_id": False})

    @_guarded
    def image(self, file_id: ObjectId | str) -> bytes:
        """The bytes of a stored image (a GridFS file id, as in an attempt's ``images``)."""
        fid = ObjectId(file_id) if isinstance(file_id, str) else file_id
        try:
            return self.bucket.open_download_stream(fid).read()
        except gridfs.errors.NoFile:
            raise KeyError(f"no image with file id {fid} in bucket {IMAGE_BUCKET!r}") from None

    @_guarded
    def delete_orphan_images(self, older_than_s: float = 3600.0) -> int:
        """Delete image files no attempt references (left by a crash between upload and insert)."""
        cutoff = _now() - timedelta(seconds=older_than_s)
        removed = 0
        for f in self.db[f"{IMAGE_BUCKET}.files"].find({"uploadDate": {"$lt": cutoff}}, {"metadata": True}):
            meta = f.get("metadata") or {}
            owner = self.db.attempts.find_one({"attempt_key": meta.get("attempt_key")}, {"images": True})
            if owner is None or f["_id"] not in (owner.get("images") or {}).values():
                self._delete_files([f["_id"]])
                removed += 1
        return removed

    # -- backends --------------------------------------------------------------------------------------

    @_guarded
    def heartbeat(self, backend: str, **fields: Any) -> None:
        """Upsert the heartbeat document of ``backend`` with ``fields`` and updated_at."""
        now = _now()
        self.db.backends.update_one(
            {"backend": backend},
            {"$set": {**fields, "backend": backend, "updated_at": now}, "$setOnInsert": {"created_at": now}},
            upsert=True,
        )

    @_guarded
    def backends(self, campaign: str | None = None) -> list[dict]:
        """Heartbeat documents (of one campaign if given), by backend id."""
        q = {} if campaign is None else {"campaign": campaign}
        return list(self.db.backends.find(q, {"_id": False}).sort("backend", 1))

    # -- dashboard queries -----------------------------------------------------------------------------

    @_guarded
    def attempt_histogram(
        self, campaign: str, since: datetime | None = None, until: datetime | None = None, bucket_s: int = 1
    ) -> list[dict]:
        """Attempts and successes of a campaign per ``bucket_s`` seconds of created_at in [since, until).

        Rows ``{"t": bucket start, "attempts": n, "successes": k}``, oldest first. A bounded range is served
        by the created_at index, so polling the recent past stays cheap however large the campaign grows.
        """
        window = {op: t for op, t in (("$gte", since), ("$lt", until)) if t is not None}
        # The time window as its own first stage, so that the created_at index bounds the scan (a planner
        # seeing both fields may pick (campaign, success) and read the whole campaign).
        stages: list[dict] = [{"$match": {"created_at": window}}] if window else []
        bucket = {"$dateTrunc": {"date": "$created_at", "unit": "second", "binSize": int(bucket_s)}}
        stages += [
            {"$match": {"campaign": campaign}},
            {
                "$group": {
                    "_id": bucket,
                    "attempts": {"$sum": 1},
                    "successes": {"$sum": {"$cond": [{"$eq": ["$success", True]}, 1, 0]}},
                }
            },
            {"$sort": {"_id": 1}},
        ]
        return [
            {"t": r["_id"], "attempts": r["attempts"], "successes": r["successes"]}
            for r in self.db.attempts.aggregate(stages)
        ]
