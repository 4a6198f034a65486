"""Write attempts to the Store from a background thread; buffer (and spool to disk) while the DB is down.

With a spool dir every submitted attempt is first written to ``<spool>/<ns>-<hash>.bson`` (a BSON document
``{record, images}``: data only, nothing executable on replay; mode 0600, fsync + atomic rename) and only its path is queued, so memory stays small during a long outage and a killed process
loses nothing: the next writer on that spool dir replays the files. A file is removed once the attempt is
stored (or found already stored); one that cannot be stored for a reason other than the database being
unreachable is moved to ``<spool>/failed/``. Pickle spool files of earlier versions are never loaded (a
pickle can run code): they are reported in the log and left in place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bson
from pymongo.errors import ConnectionFailure

from .store import StorageUnavailable, Store

log = logging.getLogger(__name__)
StatusCallback = Callable[[str, str], None]


@dataclass
class _Item:
    key: str
    path: Path | None
    record: dict | None = None
    images: dict[str, bytes] | None = None


class BufferedWriter:
    """Queue attempts and store them in order from one background thread, retrying while the DB is down.

    ``on_status(state, message)`` is called from the writer thread with state "down" (once per outage),
    "up" (backlog flushed after an outage) or "error" (an attempt that could not be stored, set aside).
    """

    def __init__(
        self,
        store_factory: Callable[[], Store],
        spool_dir: Path | None = None,
        on_status: StatusCallback | None = None,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self._store = store_factory()
        self._spool = Path(spool_dir) if spool_dir else None
        self._on_status = on_status
        self._backoff = (initial_backoff_s, max_backoff_s)
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.db_up: bool | None = None  # None until the first write
        self.stored = 0
        self.duplicates = 0
        self.failed = 0
        self.last_error = ""
        if self._spool is not None:
            self._spool.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._replay()
        self._thread = threading.Thread(target=self._run, name="myriad-writer", daemon=True)
        self._thread.start()

    # -- public ----------------------------------------------------------------------------------------

    def submit(self, record: dict, images: dict[str, bytes]) -> None:
        """Accept an attempt: spool it (if a spool dir is set), then queue it for the writer thread."""
        key = record.get("attempt_key")
        if not isinstance(key, str) or not key:
            raise ValueError(f"attempt record needs a non-empty string 'attempt_key', got {key!r}")
        if self._stop.is_set():
            raise RuntimeError("BufferedWriter is closed")
        if self._spool is not None:
            item = _Item(key, self._write_spool(record, images))
        else:
            item = _Item(key, None, record, images)
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()

    def pending(self) -> int:
        """Attempts accepted but not yet stored."""
        with self._cond:
            return len(self._queue)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every accepted attempt is stored; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to ``timeout`` s, then stop the thread; unflushed attempts stay in the spool dir."""
        flushed = self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=max(1.0, timeout))
        left = self.pending()
        if left:
            where = f"kept in {self._spool}" if self._spool else "LOST (no spool dir)"
            log.warning("writer closed with %d attempts not stored: %s", left, where)
        if not self._thread.is_alive():
            self._store.close()
        return flushed

    # -- spool -----------------------------------------------------------------------------------------

    def _write_spool(self, record: dict, images: dict[str, bytes]) -> Path:
        assert self._spool is not None
        digest = hashlib.sha1(record["attempt_key"].encode()).hexdigest()[:16]
        path = self._spool / f"{time.time_ns():020d}-{digest}.bson"
        tmp = path.with_suffix(".tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(bson.encode({"record": record, "images": images}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self._spool, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return path

    def _replay(self) -> None:
        assert self._spool is not None
        for tmp in self._spool.glob("*.tmp"):  # a submit that never returned: never acknowledged
            tmp.unlink(missing_ok=True)
        old = sorted(self._spool.glob("*.pkl"))
        if old:
            log.error(
                "not loading %d pickle spool file(s) of an earlier version in %s (pickles can run code); "
                "replay them with that version if they are trusted, or delete them",
                len(old),
                self._spool,
            )
        files = sorted(self._spool.glob("*.bson"))
        for path in files:
            self._queue.append(_Item(path.stem, path))
        if files:
            log.info("replaying %d spooled attempts from %s", len(files), self._spool)

    def _load(self, item: _Item) -> tuple[dict, dict[str, bytes]]:
        if item.path is None:
            return item.record or {}, item.images or {}
        data = bson.decode(item.path.read_bytes())
        return data["record"], data["images"]

    def _set_aside(self, item: _Item, exc: BaseException) -> None:
        self.failed += 1
        self.last_error = f"attempt {item.key} not stored: {exc}"
        log.error("%s", self.last_error)
        if item.path is not None and item.path.exists():
            failed = item.path.parent / "failed"
            failed.mkdir(exist_ok=True)
            os.replace(item.path, failed / item.path.name)
            self.last_error += f" (kept in {failed})"
        self._status("error", self.last_error)

    # -- thread ----------------------------------------------------------------------------------------

    def _status(self, state: str, message: str) -> None:
        if self._on_status is not None:
            try:
                self._on_status(state, message)
            except Exception:
                log.exception("on_status callback failed")

    def _run(self) -> None:
        backoff = self._backoff[0]
        outage = False
        flushed = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stop.is_set())
                if self._stop.is_set():
                    return
                item = self._queue[0]
            try:
                record, images = self._load(item)
                _, stored = self._store.store_attempt(record, images)
            except (StorageUnavailable, ConnectionFailure) as exc:
                self.db_up = False
                self.last_error = str(exc)
                if not outage:
                    outage = True
                    msg = (
                        f"database unreachable at {self._store.masked_uri}: "
                        f"{self.pending()} attempts buffered, retrying"
                    )
                    log.warning("%s", msg)
                    self._status("down", msg)
                if self._stop.wait(backoff):
                    return
                backoff = min(2 * backoff, self._backoff[1])
                continue
            except Exception as exc:  # noqa: BLE001 - a bad record must not block the queue
                if self._stop.is_set():
                    return
                self._set_aside(item, exc)
                stored = None
            else:
                if item.path is not None:
                    item.path.unlink(missing_ok=True)
                self.stored += bool(stored)
                self.duplicates += not stored
                self.db_up = True
                backoff = self._backoff[0]
                flushed += 1
            with self._cond:
                self._queue.popleft()
                empty = not self._queue
                self._cond.notify_all()
            if outage and empty and self.db_up:
                msg = f"database back: flushed {flushed}"
                log.warning("%s", msg)
                self._status("up", msg)
                outage = False
            if not outage:
                flushed = 0
