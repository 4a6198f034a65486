"""The one way to call another node's service or action and wait for the answer.

Rule: executor callbacks never block on another node. A blocking call (`call_service`, `call_action`) runs only on
a thread the executor does not own (a node's worker thread, a user's thread); a callback that needs one is an
`async def` that awaits `in_thread(node, fn, ...)`, which runs `fn` on a worker thread. Waiting then holds no
executor thread, so any number of composed nodes with nested calls (planner -> sim server -> controller) run on a
fixed, small thread count without starving each other. An awaiting callback keeps its callback group busy until
it returns: give it a ReentrantCallbackGroup (or one apart from the clients `fn` calls through).
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.action import ActionClient
from rclpy.client import Client
from rclpy.node import Node
from rclpy.task import Future


class CallFailed(RuntimeError):
    """A service or action call failed: `name` is the service/action, `reason` what went wrong."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


class _ActionClient(ActionClient):
    """rclpy's ActionClient with its lock made before its node can see it.

    rclpy 9.1 (Kilted) adds the client to its node's waitables before creating the client's lock; an executor
    thread that wakes in between dies with AttributeError, and every later call through that node times out
    (ros2/rclpy#1589). Here the lock exists first, and rclpy's own assignment does not replace it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_lock"] = threading.Lock()
        super().__init__(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "_lock" or "_lock" not in self.__dict__:
            super().__setattr__(name, value)


def action_client(node: Node, action_type: Any, name: str, **kwargs: Any) -> ActionClient:
    """The one way to make an action client: safe on a node another thread is spinning (see `_ActionClient`)."""
    return _ActionClient(node, action_type, name, **kwargs)


def destroy_node(node: Node) -> None:
    """Destroy `node` with its action clients and servers. rclpy's `Node.destroy_node` leaves these (waitables)
    alive, and each keeps the node, and with it the process's DDS participant, alive: a process that opens and
    closes nodes would pile up participants, and past 32 on one host new processes are no longer discovered."""
    for waitable in list(node.waitables):
        destroy = getattr(waitable, "destroy", None)
        if destroy is not None:
            destroy()
    node.destroy_node()


def wait_future(future: Future, timeout: float) -> bool:
    """Block this thread (never an executor's) until an rclpy future is done; False on timeout."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    return done.wait(timeout)


def _answer(future: Future, name: str, timeout: float) -> Any:
    if not wait_future(future, timeout):
        raise CallFailed(name, f"no answer within {timeout:g} s")
    return future.result()


def call_service(client: Client, request: Any, timeout: float, check: bool = False) -> Any:
    """The response of `client`'s service to `request` (blocking; not from an executor callback); with `check`,
    a response whose `success` is false raises CallFailed with its `message`."""
    name = client.service_name
    if not client.wait_for_service(timeout_sec=timeout):
        raise CallFailed(name, f"service not available within {timeout:g} s (is its node running?)")
    res = _answer(client.call_async(request), name, timeout)
    if check and not res.success:
        raise CallFailed(name, res.message)
    return res


def call_action(
    client: ActionClient,
    goal: Any,
    timeout: float,
    result_timeout: float | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Any:
    """The result message of an action goal (blocking; not from an executor callback).

    `timeout` bounds finding the server and the goal's acceptance, `result_timeout` (default `timeout`) the result:
    past it the goal's cancellation is requested and CallFailed raised. When `cancelled()` turns true the goal is
    cancelled and its (cancelled) result still returned.
    """
    name = client._action_name
    if not client.wait_for_server(timeout_sec=timeout):
        raise CallFailed(name, f"action server not available within {timeout:g} s (is its node running?)")
    handle = _answer(client.send_goal_async(goal), name, timeout)
    if not handle.accepted:
        raise CallFailed(name, "goal rejected")
    future = handle.get_result_async()
    limit = timeout if result_timeout is None else result_timeout
    done, deadline, cancel_sent = threading.Event(), time.monotonic() + limit, False
    future.add_done_callback(lambda _f: done.set())
    while not done.wait(0.05):
        if not cancel_sent and cancelled is not None and cancelled():
            handle.cancel_goal_async()
            cancel_sent = True
        if time.monotonic() > deadline:
            handle.cancel_goal_async()  # the server stops working on a goal nobody waits for
            raise CallFailed(name, f"no result within {limit:g} s (goal cancel requested)")
    return future.result().result


def awaitable(node: Node, future: concurrent.futures.Future) -> Future:
    """`future`, completed on another thread (a worker's, the physics thread's), as an rclpy future that an
    `async def` callback of `node` awaits holding no executor thread."""
    out = Future(executor=node.executor)
    # A done callback makes completion schedule a task on the executor, which wakes it to resume the awaiting
    # coroutine (rclpy re-polls pending coroutines only when it wakes).
    out.add_done_callback(lambda _f: None)

    def copy(done: concurrent.futures.Future) -> None:
        exc = done.exception()
        if exc is None:
            out.set_result(done.result())
        else:  # delivered to the awaiting callback
            out.set_exception(exc)

    future.add_done_callback(copy)
    return out


class _Workers:
    """Daemon threads that run `in_thread` calls, reused: an idle one takes the next call, a new one starts only
    when all are busy (so calls that wait for each other never queue behind each other), and one left idle for
    `idle_s` ends. A new thread per call grew a back end's heap: 397 instead of 357 MB peak over 600 attempts
    (bench/bench_memory.py)."""

    def __init__(self, idle_s: float = 30.0) -> None:
        self.idle_s = idle_s
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a call that no call has counted on yet

    def submit(self, call: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._calls.put(call)
        if start:
            threading.Thread(target=self._run, name="myriad_call", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                call = self._calls.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no call counts on this thread: end it
                        self._idle -= 1
                        return
                continue  # a call was counted on an idle thread: it is in the queue
            call()
            with self._lock:
                self._idle += 1


_WORKERS = _Workers()


def in_thread(node: Node, fn: Callable[..., Any], *args: Any) -> Future:
    """Run fn(*args) on a worker thread (reused, never queued behind a busy one); the returned future is awaitable
    in an `async def` callback of `node`."""
    done: concurrent.futures.Future = concurrent.futures.Future()

    def work() -> None:
        try:
            done.set_result(fn(*args))
        except Exception as exc:
            done.set_exception(exc)

    _WORKERS.submit(work)
    return awaitable(node, done)


def end_goal(goal_handle: Any, succeeded: bool) -> None:
    """Set an action goal's final state: canceled if a cancel was requested, else succeeded or aborted."""
    if goal_handle.is_cancel_requested:
        goal_handle.canceled()
    elif succeeded:
        goal_handle.succeed()
    else:
        goal_handle.abort()
