"""All MongoDB access of Myriad: campaigns, work-item leases, attempts with GridFS images, heartbeats.

Schema (one database per deployment):
- ``campaigns``: name (unique), template, seed, target, items_sha256, created_at, finished_at.
- ``work_items``: campaign, index, item_id (unique, ``f"{campaign}/{index:06d}"``), seed, params,
  state (pending | leased | done), lease_owner, lease_expires, claims, attempt_key, done_at.
- ``attempts``: one document per attempt, attempt_key unique, images ``{name: GridFS file id}``, created_at; the
  fields of myriad_storage.records.attempt_record (the recorded trajectory as a float32 array in ``trajectory``).
- GridFS bucket ``images`` (PNG), metadata ``{attempt_key, name, campaign}``.
- ``backends``: one heartbeat document per (campaign, backend id), updated_at.

Lease expiry compares against the clock of the claiming client (all back ends of a deployment share a host
or synchronised clocks). Transactions are not used: the attempt insert is idempotent on attempt_key and
the work item is marked done after it, so a crash in between is repaired by the retried store.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

import gridfs
import pymongo
from bson import Binary, ObjectId
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
)

PENDING, LEASED, DONE = "pending", "leased", "done"
IMAGE_BUCKET = "images"
# SecantusDB scans every match of a query, so claims search windows of indexes from the campaign's claim floor,
# not the whole campaign. Above the floor only the items other back ends hold are taken, so a small window nearly
# always holds a pending item: 32 instead of 256 doubled the local server's claims (43 -> 94 per second on 5000
# items, bench/bench_store.py), and a claim is on every attempt's path.
CLAIM_WINDOW = 32
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_DATABASE_RE = re.compile(r"[A-Za-z0-9_-]{1,63}")
MAX_LISTED = 1000  # the most campaigns or heartbeats one call returns (page with skip)
_AUTH_CODES = (13, 18)  # Unauthorized, AuthenticationFailed
_PASSWORD_RE = re.compile(r"(://[^:/@]*):([^@/]*)@")
_F = TypeVar("_F", bound=Callable[..., Any])
# $group accumulators of attempt counts: attempts, executed grasps (the label's denominator), successes.
_COUNTS = {
    "attempts": {"$sum": 1},
    "executed": {"$sum": {"$cond": [{"$eq": ["$grasp_executed", False]}, 0, 1]}},
    "successes": {"$sum": {"$cond": [{"$eq": ["$success", True]}, 1, 0]}},
}


def mask_uri(uri: str) -> str:
    """Return ``uri`` with any password replaced by ``***``."""
    return _PASSWORD_RE.sub(r"\1:***@", uri)


class StorageUnavailable(RuntimeError):
    """The database server could not be reached (within the client's timeout)."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = mask_uri(uri)
        self.reason = reason
        super().__init__(f"MongoDB not reachable at {self.uri}: {reason}")


def check_database_name(name: str) -> str:
    """``name`` if it is a usable database name; ValueError otherwise."""
    if not isinstance(name, str) or not _DATABASE_RE.fullmatch(name):
        raise ValueError(f"database name: expected 1-63 letters, digits, '_' or '-', got {name!r}")
    return name


class StorageAuthError(RuntimeError):
    """The server refused the URI's credentials (or the user lacks a role): retrying will not help."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = mask_uri(uri)
        super().__init__(f"MongoDB at {self.uri} refused the credentials: {reason}")


def _cap(limit: int) -> int:
    """A listing's limit: 1..MAX_LISTED (0 or more than MAX_LISTED give MAX_LISTED)."""
    return MAX_LISTED if limit <= 0 else min(limit, MAX_LISTED)


def _now() -> datetime:
    return datetime.now(UTC)


def _guarded(fn: _F) -> _F:
    """Translate pymongo connection failures into StorageUnavailable (with the masked URI)."""

    @functools.wraps(fn)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except ConnectionFailure as exc:  # the first server's error, without pymongo's topology dump
            reason = re.split(r" \(configured timeouts|, Timeout: ", str(exc))[0]
            raise StorageUnavailable(self.uri, self._hide(reason)[:400]) from exc
        except OperationFailure as exc:
            if exc.code not in _AUTH_CODES:
                raise
            raise StorageAuthError(self.uri, self._hide(str(exc.details.get("errmsg", exc)))[:400]) from exc

    return wrapper  # type: ignore[return-value]


def _campaign_attempts(
    campaign: str, since: datetime | None = None, until: datetime | None = None
) -> list[dict]:
    """Aggregation stages matching a campaign's attempts stored in [since, until). The time window is its own first
    stage, so that the created_at index bounds the scan (a planner seeing both fields may pick (campaign, success)
    and read the whole campaign)."""
    window = {op: t for op, t in (("$gte", since), ("$lt", until)) if t is not None}
    return ([{"$match": {"created_at": window}}] if window else []) + [{"$match": {"campaign": campaign}}]


class Store:
    """Typed access to the Myriad database; thread-safe (one pymongo client, pooled connections)."""

    def __init__(self, uri: str, database: str = "myriad", server_timeout_ms: int = 5000) -> None:
        if not isinstance(uri, str) or not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(
                f"database URI: expected mongodb://HOST:PORT/ or mongodb+srv://..., got {mask_uri(str(uri))!r}"
            )
        if not isinstance(database, str) or not _DATABASE_RE.fullmatch(database):
            raise ValueError(f"database name: expected 1-63 letters, digits, '_' or '-', got {database!r}")
        self.uri = uri
        self.masked_uri = mask_uri(uri)
        m = _PASSWORD_RE.search(uri)
        self._password = m.group(2) if m and m.group(2) else ""
        try:
            self.client: pymongo.MongoClient = pymongo.MongoClient(
                uri,
                tz_aware=True,
                serverSelectionTimeoutMS=server_timeout_ms,
                connectTimeoutMS=server_timeout_ms,
                socketTimeoutMS=max(4 * server_timeout_ms, 20000),
            )
        except (ConfigurationError, ValueError) as exc:  # InvalidURI, or a ValueError from parsing the host
            raise ValueError(f"database URI {self.masked_uri}: {self._hide(str(exc))}") from None
        self.db = self.client[database]
        self.bucket = gridfs.GridFSBucket(self.db, IMAGE_BUCKET)
        self._indexed = False

    def _hide(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

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
        db[f"{IMAGE_BUCKET}.files"].create_index([("filename", 1), ("uploadDate", 1)])  # GridFS's own two
        db[f"{IMAGE_BUCKET}.chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)
        if (
            "backend_1" in db.backends.index_information()
        ):  # earlier versions keyed heartbeats by backend alone
            db.backends.drop_index("backend_1")
        db.backends.create_index([("campaign", 1), ("backend", 1)], unique=True)
        self._indexed = True

    def _ensure(self) -> None:
        if not self._indexed:
            self.ensure_indexes()

    # -- campaigns -------------------------------------------------------------------------------------

    @_guarded
    def create_campaign(
        self,
        name: str,
        items: Sequence[dict] | Callable[[], Iterable[dict]],
        template: dict | None = None,
        seed: int | None = None,
    ) -> dict:
        """Create a campaign with one pending work item per parameter dict (each with an int ``seed`` >= 0).

        ``items``: a list, or a function returning a fresh iterator of them (called twice: once to check and
        fingerprint them, once to insert them in batches), so a campaign of any size needs little memory.
        Idempotent: the same name with identical items returns the existing campaign (completing any work
        items a crashed earlier call did not insert); the same name with different items raises ValueError.
        """
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(f"campaign name must match {_NAME_RE.pattern}, got {name!r}")
        if not callable(items) and iter(items) is items:  # a one-shot iterator: keep it for the second pass
            items = list(items)
        make = items if callable(items) else lambda: iter(items)
        # The fingerprint of json.dumps(list of items), computed item by item.
        sha, count = hashlib.sha256(b"["), 0
        for i, item in enumerate(make()):
            seed_ok = isinstance(item, dict) and type(item.get("seed")) is int and 0 <= item["seed"] < 2**63
            if not seed_ok:
                raise ValueError(
                    f"campaign {name!r}: item {i} must be a dict with an int 'seed' in 0..2**63-1, got {item!r}"
                )
            sha.update((", " if i else "").encode() + json.dumps(item, sort_keys=True, default=str).encode())
            count += 1
        sha.update(b"]")
        digest = sha.hexdigest()
        self._ensure()
        doc = {
            "name": name,
            "template": template,
            "seed": seed,
            "target": count,
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
                    f"{count} given); use another name"
                ) from None
        if self.db.work_items.count_documents({"campaign": name}) < count:
            self._insert_items(name, make())
        return self.campaign(name)

    def _insert_items(self, name: str, items: Iterable[dict], chunk: int = 1000) -> None:
        now = _now()
        docs = (
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
        )
        while batch := list(itertools.islice(docs, chunk)):
            try:
                self.db.work_items.insert_many(batch, ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise

    @_guarded
    def campaign(self, name: str) -> dict | None:
        """The campaign document, or None."""
        return self.db.campaigns.find_one({"name": name}, {"_id": False})

    @_guarded
    def campaigns(self, skip: int = 0, limit: int = MAX_LISTED, active: bool = False) -> list[dict]:
        """Campaigns, oldest first: at most ``limit`` (capped at MAX_LISTED) from ``skip``; unfinished ones
        only if ``active``."""
        q = {"finished_at": None} if active else {}
        cur = self.db.campaigns.find(q, {"_id": False}).sort("created_at", 1)
        return list(cur.skip(skip).limit(_cap(limit)))

    @_guarded
    def count_campaigns(self) -> int:
        """Number of campaigns."""
        return self.db.campaigns.count_documents({})

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
    def claim(self, campaign: str, backend: str, lease_s: float, take_expired: bool = True) -> dict | None:
        """Atomically lease an item to ``backend``: the lowest-index expired lease (unless ``take_expired`` is
        False), else the lowest pending.

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
        if take_expired:
            item = self._take({"campaign": campaign, "state": LEASED, "lease_expires": {"$lt": now}}, update)
            if item is not None:
                return item
        c = self.db.campaigns.find_one(
            {"name": campaign}, {"target": True, "claim_floor": True, "release_seq": True}
        )
        if c is None:
            return None
        floor, seq = c.get("claim_floor", 0), c.get("release_seq", 0)
        lo, item = floor, None
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
    def unfinished(self, campaign: str) -> int:
        """Work items of the campaign not done yet (pending or leased): through the (campaign, state) index, so it
        costs what is left, not the campaign's size (progress() reads every item and attempt of it)."""
        return self.db.work_items.count_documents({"campaign": campaign, "state": {"$in": [PENDING, LEASED]}})

    @_guarded
    def progress(self, campaign: str, outcomes: bool = False) -> dict:
        """Counts: target, pending, leased (incl. expired), done, successes, attempts, executed (attempts that
        executed a grasp: the label's denominator) and, if asked, outcomes (attempts by extra.outcome) and
        strategies: per grasp strategy and model version ("learned v3"), attempts, executed and successes."""
        c = self.campaign(campaign)
        out = {"target": c["target"] if c else 0, PENDING: 0, LEASED: 0, DONE: 0}
        for row in self.db.work_items.aggregate(
            [{"$match": {"campaign": campaign}}, {"$group": {"_id": "$state", "n": {"$sum": 1}}}]
        ):
            out[row["_id"]] = row["n"]
        counts = [{"$match": {"campaign": campaign}}, {"$group": {"_id": None, **_COUNTS}}]
        out.update({k: 0 for k in _COUNTS})
        for row in self.db.attempts.aggregate(counts):  # one pass, not a count per figure
            out.update({k: row[k] for k in _COUNTS})
        if outcomes:
            by = [{"$match": {"campaign": campaign}}, {"$group": {"_id": "$extra.outcome", "n": {"$sum": 1}}}]
            out["outcomes"] = {str(row["_id"]): row["n"] for row in self.db.attempts.aggregate(by)}
            key = {"strategy": "$params.strategy", "model": "$params.model_version"}
            group = {"_id": key, **_COUNTS}
            out["strategies"] = {
                " ".join(
                    v for v in (row["_id"].get("strategy") or "?", row["_id"].get("model") or "") if v
                ): {k: row[k] for k in ("attempts", "executed", "successes")}
                for row in self.db.attempts.aggregate([{"$match": {"campaign": campaign}}, {"$group": group}])
            }
        return out

    @_guarded
    def phase_times(self, campaign: str, since: datetime | None = None) -> dict:
        """Where an attempt's time goes: {"attempts": n, "phases": {phase: mean wall seconds per attempt}} over the
        campaign's n attempts with `timings` (stored since `since`, through the created_at index: a whole campaign
        is a scan), phases in the order attempts run them (a phase an attempt did not reach counts 0, so the phases
        add up to the mean attempt)."""
        pipeline = _campaign_attempts(campaign, since) + [
            {"$project": {"t": {"$objectToArray": "$timings"}}},
            {"$unwind": {"path": "$t", "includeArrayIndex": "i"}},
            {"$group": {"_id": "$t.k", "sum": {"$sum": "$t.v"}, "n": {"$sum": 1}, "at": {"$max": "$i"}}},
        ]
        rows = sorted(self.db.attempts.aggregate(pipeline), key=lambda r: r["at"])
        n = max((r["n"] for r in rows), default=0)
        return {"attempts": n, "phases": {r["_id"]: r["sum"] / n for r in rows}}

    @_guarded
    def model_results(self) -> dict[str, dict]:
        """Collection results per grasp-model version across all campaigns, in one aggregation: for each
        params.model_version of attempts with strategy ``learned`` (others carry a version without using it), its
        attempts, executed grasps, successes and the campaigns it was used in (sorted names)."""
        match = {"params.strategy": "learned", "params.model_version": {"$nin": ["", None]}}
        group = {"_id": "$params.model_version", **_COUNTS, "campaigns": {"$addToSet": "$campaign"}}
        return {
            row["_id"]: {**{k: row[k] for k in _COUNTS}, "campaigns": sorted(row["campaigns"])}
            for row in self.db.attempts.aggregate([{"$match": match}, {"$group": group}])
        }

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
        file_ids = {name: ObjectId() for name in images}
        try:
            self._put_images(key, record["campaign"], images, file_ids)
            try:
                self.db.attempts.insert_one({**record, "images": file_ids, "created_at": _now()})
            except DuplicateKeyError:
                stored = self._stored_images(key)
                if stored is None:  # not a stored twin: keep the work item open
                    raise
                if stored == file_ids:  # our own insert, retried by the driver
                    self._mark_done(record)
                    return key, True
                self._delete_files(file_ids.values())
                self._mark_done(record)
                return key, False
        except BaseException:
            with contextlib.suppress(Exception):  # the original error matters; orphans are collectable
                if self._stored_images(key) != file_ids:  # not an insert that committed with its answer lost
                    self._delete_files(file_ids.values())
            raise
        self._mark_done(record)
        return key, True

    def _stored_images(self, key: str) -> dict | None:
        """The image ids of the stored attempt `key`; None if no attempt has that key."""
        existing = self.db.attempts.find_one({"attempt_key": key}, {"images": True})
        return None if existing is None else existing.get("images", {})

    def _put_images(
        self, key: str, campaign: str, images: dict[str, bytes], ids: dict[str, ObjectId]
    ) -> None:
        """Write PNG images as GridFS files (the GridFS spec's chunks, then the files documents that complete them)
        in two inserts. Not GridFSBucket.upload_from_stream: each of its uploads first reads a document of both
        collections without a filter, which SecantusDB answers by decoding every stored image (measured: its CPU
        per attempt grew from 0.2 s to 1.2 s over 240 attempts)."""
        now, size = _now(), gridfs.DEFAULT_CHUNK_SIZE
        chunks = [
            {"files_id": ids[name], "n": n, "data": Binary(data[at : at + size])}
            for name, data in images.items()
            for n, at in enumerate(range(0, len(data), size))
        ]
        files = [
            {
                "_id": ids[name],
                "length": len(data),
                "chunkSize": size,
                "uploadDate": now,
                "filename": f"{key}/{name}.png",
                "metadata": {"attempt_key": key, "name": name, "campaign": campaign},
            }
            for name, data in images.items()
        ]
        if chunks:
            self.db[f"{IMAGE_BUCKET}.chunks"].insert_many(chunks)
        if files:
            self.db[f"{IMAGE_BUCKET}.files"].insert_many(files)

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
    def images(self, file_ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        """The bytes of several stored images in two queries (files, then their chunks); KeyError if one is missing
        or incomplete."""
        ids = list(dict.fromkeys(file_ids))
        files = {
            f["_id"]: f
            for f in self.db[f"{IMAGE_BUCKET}.files"].find({"_id": {"$in": ids}}, {"length": True})
        }
        parts: dict[ObjectId, list] = {fid: [] for fid in ids}
        for c in self.db[f"{IMAGE_BUCKET}.chunks"].find({"files_id": {"$in": ids}}, {"_id": False}):
            parts[c["files_id"]].append((c["n"], c["data"]))
        out = {}
        for fid in ids:
            data = b"".join(d for _n, d in sorted(parts[fid], key=lambda p: p[0]))
            if fid not in files or len(data) != files[fid]["length"]:
                raise KeyError(f"no complete image with file id {fid} in bucket {IMAGE_BUCKET!r}")
            out[fid] = data
        return out

    # -- backends --------------------------------------------------------------------------------------

    @_guarded
    def heartbeat(self, backend: str, campaign: str, **fields: Any) -> None:
        """Upsert the heartbeat document of ``backend`` in ``campaign`` with ``fields`` and updated_at (back-end
        ids are per campaign: b0 of two campaigns are two documents)."""
        now = _now()
        key = {"campaign": campaign, "backend": backend}
        self.db.backends.update_one(
            key,
            {"$set": {**fields, **key, "updated_at": now}, "$setOnInsert": {"created_at": now}},
            upsert=True,
        )

    @_guarded
    def backends(self, campaign: str | None = None, skip: int = 0, limit: int = MAX_LISTED) -> list[dict]:
        """Heartbeat documents (of one campaign if given), by campaign and backend id: at most ``limit``
        (capped at MAX_LISTED) from ``skip``."""
        q = {} if campaign is None else {"campaign": campaign}
        cur = self.db.backends.find(q, {"_id": False}).sort([("campaign", 1), ("backend", 1)])
        return list(cur.skip(skip).limit(_cap(limit)))

    # -- dashboard queries -----------------------------------------------------------------------------

    @_guarded
    def attempt_histogram(
        self, campaign: str, since: datetime | None = None, until: datetime | None = None, bucket_s: int = 1
    ) -> list[dict]:
        """Attempts and successes of a campaign per ``bucket_s`` seconds of created_at in [since, until).

        Rows ``{"t": bucket start, "attempts": n, "successes": k}``, oldest first. A bounded range is served
        by the created_at index, so polling the recent past stays cheap however large the campaign grows.
        """
        bucket = {"$dateTrunc": {"date": "$created_at", "unit": "second", "binSize": int(bucket_s)}}
        stages = _campaign_attempts(campaign, since, until) + [
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
