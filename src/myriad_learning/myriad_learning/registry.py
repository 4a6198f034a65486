"""Stored grasp models: the file in GridFS bucket `models`, a record in collection `models` (version v1, v2, ...,
training campaigns, data size, metrics, sha256 of the file). Every back end loads a model by version from the
database it stores attempts in, so a remote back end gets it as a local one does; loaded once, then cached."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import gridfs
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from myriad_learning.inference import GraspModel
from myriad_runtime import code_version
from myriad_storage.store import StorageUnavailable, Store

BUCKET = "models"
VERSION_RE = re.compile(r"v[1-9][0-9]{0,8}")


class ModelRegistry:
    def __init__(self, store: Store):
        self.store = store
        self.bucket = gridfs.GridFSBucket(store.db, BUCKET)
        self._loaded: dict[str, Any] = {}

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ConnectionFailure as exc:
            raise StorageUnavailable(self.store.uri, str(exc).split(", Timeout:")[0][:300]) from exc

    def save(self, data: bytes, info: dict[str, Any]) -> str:
        """Store a model file with its record; returns its version (the next free vN)."""
        return self._guard(lambda: self._save(data, info))

    def _save(self, data: bytes, info: dict[str, Any]) -> str:
        db = self.store.db
        db.models.create_index("version", unique=True)
        file_id = self.bucket.upload_from_stream("model.npz", data, metadata={"kind": "grasp_model"})
        number = db.models.count_documents({}) + 1
        while True:
            version = f"v{number}"
            doc = {**info, "version": version, "number": number, "file_id": file_id, "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest(), "code_version": code_version(),
                   "created_at": datetime.now(UTC)}  # fmt: skip
            try:
                db.models.insert_one(doc)
                return version
            except DuplicateKeyError:  # another training stored this number first
                number += 1

    def record(self, version: str) -> dict:
        """The model's record; ValueError naming the version and the known ones when there is none."""
        if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
            raise ValueError(
                f"model_version: expected a version like v1 (myriad train prints it), got {version!r}"
            )
        doc = self._guard(lambda: self.store.db.models.find_one({"version": version}, {"_id": False}))
        if doc is None:
            known = self._guard(lambda: [d["version"] for d in self.store.db.models.find({}, {"version": True})
                                         .sort("number", -1).limit(10)])  # fmt: skip
            raise ValueError(
                f"model_version {version!r}: no such model in database {self.store.db.name!r}; "
                f"known: {', '.join(known) or 'none (train one with myriad train CAMPAIGN)'}"
            )
        return doc

    def records(self) -> list[dict]:
        """Every model's record, newest (highest version number) first, without its GridFS file id."""
        fields = {"_id": False, "file_id": False}
        return self._guard(lambda: list(self.store.db.models.find({}, fields).sort("number", -1)))

    def load(self, version: str) -> Any:
        """The GraspModel of `version` (cached); ValueError for an unknown version or a corrupt file."""
        if version not in self._loaded:
            doc = self.record(version)
            try:
                data = self._guard(lambda: self.bucket.open_download_stream(doc["file_id"]).read())
            except gridfs.errors.NoFile:
                raise ValueError(
                    f"model {version}: its file is missing from GridFS bucket {BUCKET!r}"
                ) from None
            if hashlib.sha256(data).hexdigest() != doc["sha256"]:
                raise ValueError(f"model {version}: its file is corrupt (sha256 differs from the record's)")
            try:
                self._loaded[version] = GraspModel.from_bytes(data)
            except ValueError as exc:
                raise ValueError(f"model {version}: {exc}") from None
        return self._loaded[version]
