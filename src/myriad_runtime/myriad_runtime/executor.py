"""A single-threaded executor that keeps its wait set between waits: half the executor CPU per service call.

rclpy's SingleThreadedExecutor, at every wake-up, gathers every entity of every node, enters each handle, builds a
new wait set and tests every entity for readiness, all in Python: for a back end's ~100 entities (parameter and
type-description services, QoS event handlers, action servers and clients) that is most of what a service round
trip costs, and a grasp attempt wakes the executor ~110 times. Each handler it runs also triggers the executor's
guard condition twice, to have the wait set rebuilt, and so does every task a callback makes (the done callbacks
of a future it completes): more wake-ups.

`LeanExecutor` gathers and enters the entities, and allocates the wait set, only when the nodes' entities change
(rclpy wakes the executor on every creation and destruction); it looks the ready entities up by handle; and
neither its handlers nor the tasks its own thread makes trigger the guard: with one thread, every wait is prepared
after the previous handlers ran, so it sees their entities and callback groups free again, and it does not block
while tasks it made are pending. Everything else is rclpy's: tasks, the take and execute steps, callback groups
and shutdown (wrapped to be safe from another thread than the spinning one). It relies on rclpy's executor
internals as of ROS 2 Kilted (`myriad_runtime.container --executor rclpy` runs rclpy's own);
bench/bench_executor.py compares the two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from contextlib import ExitStack
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.executors import (
    ConditionReachedException,
    ExternalShutdownException,
    ShutdownException,
    SingleThreadedExecutor,
    TimeoutException,
    TimeoutObject,
)
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.task import Task
from rclpy.utilities import timeout_sec_to_nsec

# Entity kinds: as rclpy's wait set names them, and the Node property listing them.
KINDS = ("subscription", "timer", "client", "service")
LISTS = {"subscription": "subscriptions", "timer": "timers", "client": "clients", "service": "services"}
Ready = Generator[tuple[Any, Any, Any], None, bool]


class _Entities:
    """The entities of some nodes, entered (their handles stay valid while waited on), indexed by handle, and a
    wait set with room for all of them."""

    def __init__(self, key: tuple, context: Any, own_guards: int) -> None:
        self.key = key
        with ExitStack() as self.stack:  # released again if building fails, kept (pop_all) if it succeeds
            self._build(context, own_guards)
            self.stack = self.stack.pop_all()

    def _build(self, context: Any, own_guards: int) -> None:
        self.items: dict[str, list[tuple[Any, Any, Any]]] = {k: [] for k in KINDS}
        self.by_pointer: dict[str, dict[int, tuple[Any, Any, Any]]] = {k: {} for k in KINDS}
        self.guards: list[tuple[Any, Any]] = []
        self.waitables: list[tuple[Any, Any]] = []
        for node, *kinds, guards, waitables in self.key:
            for kind, entities in zip(KINDS, kinds, strict=True):
                for entity in entities:
                    if self._enter(entity.handle):
                        item = (entity, entity.handle, node)
                        self.items[kind].append(item)
                        self.by_pointer[kind][entity.handle.pointer] = item
            self.guards += [(gc, node) for gc in guards if self._enter(gc.handle)]
            self.waitables += [(w, node) for w in waitables if self._enter(w)]
        counts = [len(self.items[k]) for k in KINDS]
        n_guards, n_events = len(self.guards) + own_guards, 0
        for w, _ in self.waitables:
            n = w.get_num_entities()
            counts = [c + getattr(n, f"num_{k}s") for c, k in zip(counts, KINDS, strict=True)]
            n_guards, n_events = n_guards + n.num_guard_conditions, n_events + n.num_events
        self.stack.enter_context(context.handle)
        subs, timers, clients, services = counts
        self.wait_set = _rclpy.WaitSet(subs, n_guards, timers, clients, services, n_events, context.handle)

    def close(self) -> None:
        """Release the entities' handles (their nodes may destroy them now)."""
        self.stack.close()

    def _enter(self, handle: Any) -> bool:
        try:
            self.stack.enter_context(handle)
        except InvalidHandle:  # destroyed meanwhile: its removal wakes the executor again
            return False
        return True


def _group_free(group: Any, entity: Any) -> bool:
    """Whether the entity's callback group lets it run now (without the assertion and lock of rclpy's check for
    its two group types: nothing else changes a group's state while this executor's one thread waits)."""
    if type(group) is ReentrantCallbackGroup:
        return True
    if type(group) is MutuallyExclusiveCallbackGroup:
        return group._active_entity is None
    return group is not None and group.can_execute(entity)


def _may_run(entity: Any) -> bool:
    """Whether to wait on the entity: its handler is not pending and its callback group lets it run."""
    return not entity._executor_event and _group_free(entity.callback_group, entity)


class LeanExecutor(SingleThreadedExecutor):
    """rclpy's SingleThreadedExecutor with a wait set prepared once per change of the entities (module docstring)."""

    def __init__(self, *, context: Any = None) -> None:
        super().__init__(context=context)
        self._cached: _Entities | None = None
        self._spinning: int | None = None  # the thread in the wait loop
        self._new_tasks = False  # tasks created by that thread since its last wait
        self._wait_lock = threading.RLock()  # held while a wait is prepared, waited and read (shutdown waits)

    def create_task(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        """rclpy's create_task, without the guard trigger (a wake-up) for a task the spinning thread creates
        itself (the done callbacks of a future it completes): its next wait does not block."""
        if threading.get_ident() != self._spinning:
            return super().create_task(callback, *args, **kwargs)
        task = Task(callback, args, kwargs, executor=self)
        with self._tasks_lock:
            self._tasks.append((task, None, None))
        self._new_tasks = True
        return task

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        """rclpy's shutdown, safe from another thread than the spinning one: that thread is woken and leaves its
        wait before the executor's guard conditions and the held entities are destroyed."""
        with self._shutdown_lock:
            if not self._is_shutdown:
                self._is_shutdown = True
                if self._guard:
                    self._guard.trigger()
        with self._wait_lock:
            done = super().shutdown(timeout_sec)
            if self._cached is not None:
                self._cached.close()
                self._cached = None
        return done

    def _entities(self, nodes: list[Any]) -> _Entities:
        key = tuple(
            (node, tuple(node.subscriptions), tuple(node.timers), tuple(node.clients), tuple(node.services),
             tuple(node.guards), tuple(node.waitables))
            for node in nodes
        )  # fmt: skip
        if self._cached is None or self._cached.key != key:
            if self._cached is not None:
                self._cached.close()
                self._cached = None
            self._cached = _Entities(key, self._context, own_guards=2)  # self._guard and self._sigint_gc
        return self._cached

    def _make_handler(self, entity: Any, node: Any, take: Callable[[Any], Any]) -> Task:
        """rclpy's handler (take the entity's data, run its callback within its group) without its two guard
        triggers: with one thread the next wait is prepared after this handler ran (module docstring)."""
        entity._executor_event = True  # not waited on until taken
        work = self._work_tracker

        async def handler() -> None:
            group = entity.callback_group
            if self._is_shutdown or (group is not None and not group.beginning_execution(entity)):
                entity._executor_event = False
                return
            with work:
                call = take(entity)
                entity._executor_event = False
                try:
                    if call is not None:
                        await call()
                finally:
                    if group is not None:
                        group.ending_execution(entity)

        task = Task(handler, executor=self)
        with self._tasks_lock:
            self._tasks.append((task, entity, node))
        return task

    def _wait_for_ready_callbacks(
        self,
        timeout_sec: float | TimeoutObject | None = None,
        nodes: list[Any] | None = None,
        condition: Callable[[], bool] = lambda: False,
    ) -> Generator[tuple[Any, Any, Any], None, None]:
        timeout = timeout_sec.timeout if isinstance(timeout_sec, TimeoutObject) else timeout_sec
        timeout_ns = timeout_sec_to_nsec(timeout)
        deadline = time.monotonic_ns() + timeout_ns if timeout_ns > 0 else None
        yielded = False
        self._spinning = threading.get_ident()
        while not yielded and not self._is_shutdown and not condition():
            use = list(self.get_nodes()) if nodes is None else list(nodes)
            yielded = yield from self._pending_tasks(use)
            wait_ns = (
                -1 if timeout_ns < 0 else 0 if deadline is None else max(0, deadline - time.monotonic_ns())
            )
            if self._new_tasks:  # created by the tasks just run: look, do not block
                self._new_tasks, wait_ns = False, 0
            yielded = (yield from self._wait_once(use, wait_ns)) or yielded
            if not yielded and (
                timeout_ns == 0 or (deadline is not None and time.monotonic_ns() >= deadline)
            ):
                raise TimeoutException()
        if self._is_shutdown:
            raise ShutdownException()
        if condition():
            raise ConditionReachedException()

    def _pending_tasks(self, nodes: list[Any]) -> Ready:
        """Yield the tasks that are neither running nor done (oldest first), then drop the finished ones."""
        with self._tasks_lock:
            tasks = list(self._tasks)
        if not tasks:
            return False
        yielded = False
        for task, entity, node in tasks:
            if not task.executing() and not task.done() and (node is None or node in nodes):
                yielded = True
                yield task, entity, node
                if task.done():  # it may have completed a future a task polled before it awaits: look again
                    self._new_tasks = True
        with self._tasks_lock:
            self._tasks = [t for t in self._tasks if not (t[0].done() or t[0].cancelled())]
        return yielded

    def _wait_once(self, nodes: list[Any], wait_ns: int) -> Ready:
        """One wait on the entities that may run now; yield a handler for each ready one."""
        with self._wait_lock:  # shutdown destroys nothing meanwhile
            if self._is_shutdown:
                raise ShutdownException()
            entities = self._entities(nodes)
            ready, ready_waitables = self._wait(entities, wait_ns)
        yielded = False
        for w, node in ready_waitables:
            if w in node.waitables and _group_free(w.callback_group, w):
                yielded = True
                yield self._make_handler(w, node, self._take_waitable), w, node
        for kind, take in zip(KINDS, (self._take_subscription, self._take_timer, self._take_client, self._take_service),
                              strict=True):  # fmt: skip
            for entity, node in ready[kind]:
                if self._is_shutdown:
                    return yielded
                if entity not in getattr(node, LISTS[kind]):  # destroyed by a handler run since this wait
                    continue
                if _group_free(entity.callback_group, entity):
                    yielded = True
                    yield self._make_handler(entity, node, take), entity, node
        for gc, node in entities.guards:
            if gc._executor_triggered and gc.callback_group and _group_free(gc.callback_group, gc):
                yielded = True
                yield self._make_handler(gc, node, self._take_guard_condition), gc, node
        return yielded

    def _wait(self, entities: _Entities, wait_ns: int) -> tuple[dict[str, list], list]:
        """Prepare the wait set, wait, and read what is ready: per kind (entity, node) pairs, and the ready
        waitables (with their nodes)."""
        wait_set = entities.wait_set
        wait_set.clear_entities()
        for kind, add in zip(
            KINDS,
            (wait_set.add_subscription, wait_set.add_timer, wait_set.add_client, wait_set.add_service),
            strict=True,
        ):
            for entity, handle, _ in entities.items[kind]:
                if _may_run(entity):
                    add(handle)
        guards = [gc for gc, _ in entities.guards if _may_run(gc)]
        for gc in guards:
            if gc._executor_triggered:  # triggered but not handled yet: wake again for it
                gc.trigger()
            wait_set.add_guard_condition(gc.handle)
        for gc in (self._guard, self._sigint_gc):
            if gc:
                wait_set.add_guard_condition(gc.handle)
        waitables = [(w, node) for w, node in entities.waitables if _may_run(w)]
        for w, _ in waitables:
            w.add_to_wait_set(wait_set)
        wait_set.wait(wait_ns)
        if self._is_shutdown:
            raise ShutdownException()
        if not self._context.ok():
            raise ExternalShutdownException()
        ready: dict[str, list] = {}
        for kind in KINDS:
            index = entities.by_pointer[kind]
            ready[kind] = [
                (index[p][0], index[p][2])
                for p in wait_set.get_ready_entities(kind)
                if p in index  # not one of a waitable's own entities (an action server's services)
                and (
                    kind != "timer" or index[p][1].is_timer_ready()
                )  # a cancelled timer can be reported ready
            ]
        if guards:
            ready_guards = set(wait_set.get_ready_entities("guard_condition"))
            for gc in guards:
                if gc.handle.pointer in ready_guards:
                    gc._executor_triggered = True
        return ready, [(w, node) for w, node in waitables if w.is_ready(wait_set)]
