"""The ``logger`` node of a back end: hands out work items, stores attempts, reports heartbeats.

The database URI comes from the environment (``MYRIAD_MONGO_URI``), never from a parameter: parameters are
readable by every process on the host. Services (relative): ``claim_work`` (ClaimWork), ``store_attempt``
(StoreAttempt). Topic: ``status`` (BackendStatus, every heartbeat_period). A back end works on one item at a time:
a claim hands back the items handed out before and not stored, so a claim whose answer was lost is safe to repeat.
While the sampler works on an item, the logger leases the next one ahead, so the next claim does not wait for the
database (a claim took 15 ms, median, with two back ends on two cores, now 2 ms); that lease is renewed like the
current one, handed back at shutdown, and expires with it if the back end is killed.
Database I/O other than the services' own calls (lease renewal, heartbeats, attempt writes) runs in background
threads, so callbacks never wait on an outage for long.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException

from myriad_interfaces.msg import BackendStatus
from myriad_interfaces.srv import ClaimWork, StoreAttempt
from myriad_runtime.calls import in_thread
from myriad_runtime.node import BackendNode

from .records import attempt_msg_to_record
from .server import ENV_URI
from .store import StorageUnavailable, Store
from .writer import BufferedWriter

RATE_WINDOW_S = 60.0
MAX_PERIOD_S = 86400.0  # lease, heartbeat and database timeout: at most a day (a date must hold lease ends)


class LoggerNode(BackendNode):
    """Logger of one back end; ``kwargs`` go to ``Node`` (namespace, context, parameter_overrides, ...)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("logger", **kwargs)
        self._read_parameters()
        timeout_ms = int(self._db_timeout_s * 1000)
        self._store = Store(self._uri, self._database, server_timeout_ms=timeout_ms)
        self._writer = BufferedWriter(
            lambda: Store(self._uri, self._database, server_timeout_ms=timeout_ms),
            spool_dir=self._spool_dir,
            on_status=self._on_writer_status,
        )
        self._lock = threading.Lock()
        self._leased: dict[str, float] = {}  # item_id -> monotonic time of the last renewal
        self._handed: set[str] = set()  # leased items handed to the sampler and not stored
        self._current_item = ""
        self._claims = ThreadPoolExecutor(1, thread_name_prefix="logger-claim")
        self._ahead: Future | None = None  # the claim of the item after the current one
        self._waiting = False
        self._stopping = False
        self._stopped = False  # closed: attempts flushed or spooled, leases handed back
        self._attempts = 0
        self._successes = 0
        self._times: deque[float] = deque()
        self._started = time.monotonic()
        self._last_error = ""
        self._db_down = False  # last claim/heartbeat/renewal found the database unreachable
        self._db_back_at: float | None = None  # monotonic time the database was last found reachable again
        self._host = socket.gethostname()
        self._status_pub = self.create_publisher(BackendStatus, "status", 10)
        # Its own group: while a claim awaits the database, stores and status go on.
        self.create_service(
            ClaimWork, "claim_work", self._on_claim, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.create_service(StoreAttempt, "store_attempt", self._on_store)
        self.create_timer(self._hb_period, self._publish_status)
        self._stop = threading.Event()
        self._housekeeper = threading.Thread(
            target=self._housekeep_loop, name="logger-heartbeat", daemon=True
        )
        self._housekeeper.start()
        self.get_logger().info(
            f"logger for backend {self._backend!r}: database {self._database!r} at {self._store.masked_uri}, "
            f"campaign {self._campaign!r}, spool {self._spool_dir or 'none'}"
        )

    def _read_parameters(self) -> None:
        ns = self.get_namespace().strip("/").replace("/", "_")
        p = {
            "database": self.declare_parameter("database", "myriad").value,
            "campaign": self.declare_parameter("campaign", "").value,
            "backend_id": self.declare_parameter("backend_id", ns or socket.gethostname()).value,
            "lease_s": self.declare_parameter("lease_s", 60.0).value,
            "heartbeat_period": self.declare_parameter("heartbeat_period", 2.0).value,
            "spool_dir": self.declare_parameter("spool_dir", "").value,
            "db_timeout_s": self.declare_parameter("db_timeout_s", 5.0).value,
        }
        uri = os.environ.get(ENV_URI, "")
        if not uri:  # a secret: never a ROS parameter (readable by any process on the host) or a file
            raise ValueError(
                f"environment variable {ENV_URI} is required (the database URI), e.g. mongodb://127.0.0.1:27117/"
            )
        if not p["database"] or not p["backend_id"]:
            raise ValueError(f"parameters 'database' and 'backend_id' must be non-empty, got {p}")
        for name in ("lease_s", "heartbeat_period", "db_timeout_s"):
            if not 0 < p[name] <= MAX_PERIOD_S:
                raise ValueError(
                    f"parameter {name!r} must be > 0 and at most {MAX_PERIOD_S:g} seconds, got {p[name]}"
                )
        self._uri, self._database, self._campaign = uri, p["database"], p["campaign"]
        self._backend, self._lease_s = p["backend_id"], float(p["lease_s"])
        self._hb_period, self._db_timeout_s = float(p["heartbeat_period"]), float(p["db_timeout_s"])
        self._spool_dir = Path(p["spool_dir"]) if p["spool_dir"] else None

    # -- services --------------------------------------------------------------------------------------

    async def _on_claim(self, req: ClaimWork.Request, res: ClaimWork.Response) -> ClaimWork.Response:
        """The database calls run on a thread of their own: in an outage they wait out the client's timeout, and
        the back end's executor (one thread for all its nodes) keeps serving meanwhile. An unexpected error (a
        malformed work item, say) fails the claim, logged with its traceback, instead of ending the process.
        The usual claim needs no database call: it hands out the item leased ahead, at once."""
        try:
            item = self._ready_ahead()
            if item is not None:
                self._ahead = None
                return self._hand_out(item, res)
            return await in_thread(self, self._claim, res)
        except Exception as exc:
            self._last_error = f"claim failed: {exc!r}"
            self.get_logger().error(f"claim failed: {traceback.format_exc()}")
            res.available, res.message = False, f"internal error: {exc!r}"
            return res

    def _claim(self, res: ClaimWork.Response) -> ClaimWork.Response:
        res.campaign = self._campaign
        if not self._campaign:
            res.message = "no campaign: set the logger's parameter 'campaign'"
            return res
        try:
            retry = self._hand_back_unstored()
            ahead, self._ahead = self._ahead, None
            item = self._take_ahead(ahead, retry)
            prog = known = None
            if item is None:
                item = self._claim_item()
            if item is None:
                prog = self._store.progress(self._campaign)
                known = self._store.campaign(self._campaign) is not None
                self._db_reachable()
        except StorageUnavailable as exc:
            self._db_error(exc)
            res.message = f"database unavailable: {exc}"
            return res
        if item is not None:
            return self._hand_out(item, res)
        if not known:
            res.message = f"no campaign named {self._campaign!r} in database {self._database!r}"
        else:
            res.done = prog["pending"] == 0 and prog["leased"] == 0
            self._waiting = not res.done
            res.message = "campaign done" if res.done else f"no pending item; {prog['leased']} leased"
        return res

    def _hand_out(self, item: dict, res: ClaimWork.Response) -> ClaimWork.Response:
        """Answer with a leased item, and start leasing the next one."""
        with self._lock:
            self._handed.add(item["item_id"])
            self._current_item = item["item_id"]
            self._waiting = False
        self._claim_ahead()
        res.campaign, res.available = self._campaign, True
        res.item_id, res.item_index, res.seed = item["item_id"], item["index"], item["seed"]
        res.params_json = json.dumps(item["params"])
        res.message = f"leased for {self._lease_s:g} s"
        return res

    def _ready_ahead(self) -> dict | None:
        """The item leased ahead, if its claim is done and nothing handed out waits to be handed back."""
        ahead = self._ahead
        if ahead is None or not ahead.done() or ahead.exception() is not None:
            return None
        item = ahead.result()
        with self._lock:
            return item if item is not None and not self._handed and item["item_id"] in self._leased else None

    def _take_ahead(self, ahead: Future | None, retry: bool) -> dict | None:
        """The item leased ahead, if any; not when this claim repeats one (it goes back too, so that the retry
        gets the lowest free item: the same again), nor when its lease was lost meanwhile or its claim failed."""
        try:
            item = ahead.result() if ahead is not None else None
        except StorageUnavailable:
            return None
        if item is not None and retry:
            self._release([item["item_id"]])
        with self._lock:
            return item if item is not None and item["item_id"] in self._leased else None

    def _claim_ahead(self) -> None:
        """Start leasing the item after the one just handed out (not once shutting down)."""
        try:
            self._ahead = None if self._stopping else self._claims.submit(self._claim_item)
        except RuntimeError:  # closed meanwhile
            self._ahead = None

    def _claim_item(self) -> dict | None:
        """Lease one item of the campaign to this back end (renewed from now on), or None if none is free."""
        item = self._store.claim(self._campaign, self._backend, self._lease_s, self._may_take_expired())
        self._db_reachable()
        if item is not None:
            with self._lock:
                self._leased[item["item_id"]] = time.monotonic()
        return item

    def _may_take_expired(self) -> bool:
        """Whether a claim may take over an expired lease: not for one lease length after an outage.

        In an outage no back end can renew its leases, and the attempts it finished wait in its spool, so an
        outage longer than a lease expires the leases of back ends that are alive and done. For a lease length
        after the database is back (the writers retry within that), this logger leaves them to their owners.
        """
        if self._db_down:  # this claim may be the first to find it back
            return False
        return self._db_back_at is None or time.monotonic() - self._db_back_at >= self._lease_s

    def _hand_back_unstored(self) -> bool:
        """Release the items this back end handed out and never stored before it claims again; whether any.

        The sampler asks for work only when it has none, so such an item's claim answer was lost (a service
        response DDS drops while the server has not yet matched the client) or its attempt failed. Renewed for
        ever, it would keep its campaign from finishing; released, the retried claim gets it again.
        """
        with self._lock:
            items, self._handed = list(self._handed), set()
        for item_id in self._release(items):
            self.get_logger().warning(
                f"{item_id}: claimed but not stored (a lost answer or a failed attempt), handed back"
            )
        return bool(items)

    def _release(self, items: list[str]) -> list[str]:
        """Put these leased items back to pending; returns their ids."""
        with self._lock:
            for item_id in items:
                self._leased.pop(item_id, None)
        for item_id in items:
            self._store.release(item_id, self._backend)
        return items

    def _on_store(self, req: StoreAttempt.Request, res: StoreAttempt.Response) -> StoreAttempt.Response:
        try:
            started = time.perf_counter()
            record, images = attempt_msg_to_record(req.attempt)
            record["timings"]["encode"] = round(time.perf_counter() - started, 4)  # the images' PNGs, mostly
            record["backend"] = record["backend"] or self._backend
            self._writer.submit(record, images)
        except Exception as exc:  # a malformed attempt (ValueError) or any other failure: rejected, not fatal
            self._last_error = f"attempt rejected: {exc}"
            self.get_logger().error(self._last_error)
            res.message = str(exc)
            return res
        now = time.monotonic()
        with self._lock:
            self._leased.pop(record["item_id"], None)
            self._handed.discard(record["item_id"])
            if self._current_item == record["item_id"]:
                self._current_item = ""
            self._attempts += 1
            self._successes += bool(record["success"])  # None: no grasp executed, no label
            self._times.append(now)
        res.accepted = True
        res.buffered = self._writer.db_up is False or self._db_down
        pending = self._writer.pending()
        res.message = f"buffered: database unreachable, {pending} pending" if res.buffered else "queued"
        return res

    # -- status ----------------------------------------------------------------------------------------

    def _db_reachable(self) -> None:
        if self._db_down:
            self._db_back_at = time.monotonic()
            self.get_logger().info(
                f"database reachable again; leases that expired meanwhile are left to their owners for "
                f"{self._lease_s:g} s"
            )
        self._db_down = False

    def _db_error(self, exc: StorageUnavailable) -> None:
        if not self._db_down:
            self.get_logger().warning(str(exc))
        self._db_down = True
        self._last_error = str(exc)

    def _on_writer_status(self, state: str, message: str) -> None:
        if state == "up":
            self.get_logger().info(message)
        else:
            self._last_error = message
            self.get_logger().warning(message)

    def _status_fields(self) -> dict:
        now = time.monotonic()
        with self._lock:
            while self._times and self._times[0] < now - RATE_WINDOW_S:
                self._times.popleft()
            window = min(RATE_WINDOW_S, max(now - self._started, 1e-3))
            if self._stopped:
                state = "stopped"
            elif self._stopping:
                state = "stopping"
            elif self._writer.db_up is False or self._db_down:
                state = "error"
            elif self._leased:
                state = "working"
            else:
                state = "waiting" if self._waiting else "idle"
            return {
                "campaign": self._campaign,
                "host": self._host,
                "pid": os.getpid(),
                "state": state,
                "current_item": self._current_item,
                "attempts": self._attempts,
                "successes": self._successes,
                "rate": len(self._times) / window,
                "last_error": self._last_error,
                "pending_writes": self._writer.pending(),
            }

    def _publish_status(self) -> None:
        f = self._status_fields()
        msg = BackendStatus(
            backend=self._backend,
            host=f["host"],
            state=f["state"],
            current_item=f["current_item"],
            attempts=f["attempts"],
            successes=f["successes"],
            rate=f["rate"],
            last_error=f["last_error"],
        )
        msg.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    def _housekeep_loop(self) -> None:
        while True:
            self._renew_leases()
            try:
                self._store.heartbeat(self._backend, **self._status_fields())
                self._db_reachable()
            except StorageUnavailable as exc:
                self._db_error(exc)
            if self._stop.wait(self._hb_period):
                return

    def _renew_leases(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [i for i, t in self._leased.items() if now - t >= self._lease_s / 3]
        for item_id in due:
            try:
                held = self._store.renew(item_id, self._backend, self._lease_s)
            except StorageUnavailable as exc:
                self._db_error(exc)
                return
            with self._lock:
                if held and item_id in self._leased:
                    self._leased[item_id] = now
                elif not held and self._leased.pop(item_id, None) is not None:
                    self.get_logger().warning(f"lease of {item_id} lost (expired and reclaimed, or done)")

    # -- shutdown --------------------------------------------------------------------------------------

    def close(self, flush_timeout: float = 5.0) -> None:
        """Stop heartbeats, flush buffered attempts (spooled ones survive a timeout), close the DB."""
        if self._stopping:
            return
        self._stopping = True
        self._stop.set()
        self._housekeeper.join(timeout=self._db_timeout_s + 1.0)
        if not self._writer.close(flush_timeout):
            self.get_logger().warning(f"{self._writer.pending()} attempts not flushed at shutdown")
        self._claims.shutdown(wait=True)  # a claim ahead in flight: its item is handed back with the others
        try:  # hand unfinished items back at once rather than leaving their leases to expire
            with self._lock:
                items = list(self._leased)
            self._release(items)
            self._stopped = True
            self._store.heartbeat(self._backend, **self._status_fields())
        except StorageUnavailable:
            pass
        self._store.close()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Run the logger node alone until SIGINT or external shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = LoggerNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:  # invalid parameters
        print(f"logger: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
