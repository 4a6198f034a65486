"""myriad_runtime.executor.LeanExecutor and rclpy's SingleThreadedExecutor, on real nodes in one context, behave
the same: services awaiting another thread, action goals, timers, tasks made by other threads, entities made and
destroyed while it spins, mutually exclusive groups; a wait blocks instead of polling; shutdown lets the nodes go.
What it saves is measured in bench/bench_executor.py."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="source scripts/env.sh")
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from myriad_runtime.calls import action_client, awaitable, call_action, call_service  # noqa: E402
from myriad_runtime.container import make_executor  # noqa: E402

KINDS = ["lean", "rclpy"]


def released(handle, timeout: float = 5.0) -> bool:
    """Whether an entity's handle is destroyed for real (its pointer becomes 0; destruction waits while it is in
    use, as in a wait set)."""
    deadline = time.monotonic() + timeout
    while handle.pointer != 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    return handle.pointer == 0


class Spinning:
    """Nodes in a context of their own, spun by one executor thread as the container spins them."""

    def __init__(self, kind: str, names: tuple[str, ...] = ("a", "b")) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = make_executor(1, self.context, kind=kind)
        self.nodes = [Node(n, namespace="/executor_test", context=self.context) for n in names]
        for node in self.nodes:
            self.executor.add_node(node)
        self.stop = threading.Event()
        self.cpu = 0.0  # CPU seconds of the spinning thread, when it has ended
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        clock = time.pthread_getcpuclockid(threading.get_ident())
        while not self.stop.is_set():
            self.executor.spin_once(timeout_sec=0.1)
        self.cpu = time.clock_gettime(clock)

    def close(self) -> None:
        if self.stop.is_set():
            return
        self.stop.set()
        self.thread.join(timeout=5.0)
        assert not self.thread.is_alive(), "the executor thread did not return from spin_once"
        self.executor.shutdown(timeout_sec=5.0)
        for node in self.nodes:
            node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def spinning(request):
    made: list[Spinning] = []

    def make(kind: str, names: tuple[str, ...] = ("a", "b")) -> Spinning:
        made.append(Spinning(kind, names))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.mark.parametrize("kind", KINDS)
def test_services_awaiting_another_thread_answer_every_call_without_polling(spinning, kind):
    """50 calls from a worker thread to a service whose async callback awaits 20 ms of work on another thread
    (as the sim server's do on its physics thread): every call answered in order, and while the work runs the
    executor thread sleeps (one that polls the awaiting callback burns more than half of that second), and no
    call waits for the executor's 0.1 s timeout to be noticed (a lost wake-up: 50 calls would take > 5 s)."""
    s = spinning(kind)
    server, caller = s.nodes
    work = concurrent.futures.ThreadPoolExecutor(1)
    served = []

    async def serve(_req, res):
        served.append(await awaitable(server, work.submit(time.sleep, 0.02)) is None)
        res.success, res.message = True, str(len(served))
        return res

    server.create_service(Trigger, "work", serve, callback_group=ReentrantCallbackGroup())
    client = caller.create_client(Trigger, "work")
    started = time.monotonic()
    answers = [call_service(client, Trigger.Request(), 10.0).message for _ in range(50)]
    took = time.monotonic() - started
    s.close()
    assert answers == [str(k) for k in range(1, 51)] and all(served)
    assert s.cpu < 0.25, f"executor thread used {s.cpu:.2f} s of CPU over >= 1 s of awaited work"
    assert took < 4.0, f"50 calls of 20 ms took {took:.1f} s"


@pytest.mark.parametrize("kind", KINDS)
def test_a_mutually_exclusive_group_runs_one_callback_at_a_time(spinning, kind):
    """Two services in one mutually exclusive group, their callbacks awaiting 50 ms each, called 5 times each
    from two threads: never both at once, all answered, and the one that must wait is not polled meanwhile (its
    request stays ready: one left in the wait set wakes the executor until the other ends); a reentrant service
    is not held up."""
    s = spinning(kind)
    server, caller = s.nodes
    work = concurrent.futures.ThreadPoolExecutor(4)
    group = MutuallyExclusiveCallbackGroup()
    running, overlap = [0], [0]

    async def slow(_req, res):
        running[0] += 1
        overlap[0] = max(overlap[0], running[0])
        await awaitable(server, work.submit(time.sleep, 0.05))
        running[0] -= 1
        res.success = True
        return res

    def quick(_req, res):
        res.success = True
        return res

    for name in ("x", "y"):
        server.create_service(Trigger, name, slow, callback_group=group)
    server.create_service(Trigger, "quick", quick, callback_group=ReentrantCallbackGroup())
    results: list[bool] = []

    def calls(name: str) -> None:
        client = caller.create_client(Trigger, name)
        results.extend(call_service(client, Trigger.Request(), 10.0).success for _ in range(5))

    threads = [threading.Thread(target=calls, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    quick_client = caller.create_client(Trigger, "quick")
    quick_answers = [call_service(quick_client, Trigger.Request(), 10.0).success for _ in range(10)]
    for t in threads:
        t.join(timeout=30.0)
    s.close()
    assert results == [True] * 10 and quick_answers == [True] * 10
    assert overlap[0] == 1
    assert s.cpu < 0.25, f"executor thread used {s.cpu:.2f} s of CPU over >= 0.5 s of awaited work"


@pytest.mark.parametrize("kind", KINDS)
def test_entities_made_and_destroyed_while_it_spins(spinning, kind):
    """A subscription made while the executor waits receives; once destroyed it is neither waited on nor called
    (its handle is released), and one made after it receives again; a timer made meanwhile fires."""
    s = spinning(kind)
    pub_node, sub_node = s.nodes
    pub = pub_node.create_publisher(String, "chatter", 10)
    got: list[str] = []

    def receive_one(tag: str) -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not any(m.startswith(tag) for m in got):
            pub.publish(String(data=f"{tag}-{len(got)}"))
            time.sleep(0.05)
        assert any(m.startswith(tag) for m in got), f"no {tag!r} message received: {got}"

    first = sub_node.create_subscription(String, "chatter", lambda m: got.append(m.data), 10)
    receive_one("first")
    sub_node.destroy_subscription(first)
    assert released(first.handle), "the destroyed subscription's handle is still held"
    count = len(got)
    for _ in range(5):
        pub.publish(String(data="nobody"))
    time.sleep(0.3)
    assert len(got) == count
    sub_node.create_subscription(String, "chatter", lambda m: got.append(m.data), 10)
    receive_one("second")
    ticks = threading.Event()
    sub_node.create_timer(0.02, ticks.set)
    assert ticks.wait(5.0), "a timer made while spinning never fired"


@pytest.mark.parametrize("kind", KINDS)
def test_tasks_from_other_threads_and_action_goals(spinning, kind):
    """A task made from another thread runs (the executor is woken for it), and so does a chain of 20 tasks each
    made by the one before, without waiting for the executor's 0.1 s timeout in between (> 2 s); an action goal
    whose execute callback awaits another thread completes with its result, 20 times in a row."""
    from myriad_interfaces.action import GripperCommand

    s = spinning(kind)
    server, caller = s.nodes
    ran = threading.Event()

    def chain(left: int) -> None:
        if left:
            s.executor.create_task(chain, left - 1)
        else:
            ran.set()

    started = time.monotonic()
    s.executor.create_task(chain, 20)
    assert ran.wait(10.0)
    took = time.monotonic() - started
    assert took < 1.0, f"20 chained tasks took {took:.1f} s"
    work = concurrent.futures.ThreadPoolExecutor(1)

    async def execute(goal_handle):
        position = await awaitable(server, work.submit(lambda: goal_handle.request.position * 2))
        goal_handle.succeed()
        return GripperCommand.Result(position=position, reached_goal=True)

    from rclpy.action import ActionServer

    ActionServer(server, GripperCommand, "grip", execute, callback_group=ReentrantCallbackGroup())
    client = action_client(caller, GripperCommand, "grip")
    results = [call_action(client, GripperCommand.Goal(position=k / 100), 10.0) for k in range(20)]
    assert [r.position for r in results] == pytest.approx([k / 50 for k in range(20)])
    assert all(r.reached_goal for r in results)


def test_a_task_finishing_resumes_one_polled_before_it(spinning):
    """A coroutine awaits a bare future; a task made by another thread completes it and runs after the coroutine
    was polled in the same pass: the lean executor resumes the coroutine at once (rclpy's waits for its 0.1 s
    timeout each time: 20 resumptions take 2.0 s)."""
    from rclpy.task import Future

    s = spinning("lean")
    futures: list[Future] = []
    done = threading.Event()

    async def waiter() -> None:
        for _ in range(20):
            futures.append(Future())
            await futures[-1]
        done.set()

    started = time.monotonic()
    s.executor.create_task(waiter)
    for k in range(20):
        wait_for_len = time.monotonic() + 10.0
        while len(futures) <= k and time.monotonic() < wait_for_len:
            time.sleep(0.001)
        s.executor.create_task(futures[k].set_result, True)
    assert done.wait(10.0)
    took = time.monotonic() - started
    assert took < 1.5, f"20 resumptions took {took:.1f} s"


@pytest.mark.parametrize("kind", KINDS)
def test_shutdown_lets_the_nodes_go(spinning, kind):
    """After the executor's shutdown (the container's order) the nodes are destroyed for real: their entities'
    handles are released, not held by a wait set kept for the next wait."""
    s = spinning(kind)
    service = s.nodes[0].create_service(Trigger, "ping", lambda _q, r: r)
    client = s.nodes[1].create_client(Trigger, "ping")
    call_service(client, Trigger.Request(), 10.0)
    s.close()
    assert released(service.handle) and released(client.handle)


def test_an_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="executor 'events': expected one of lean, rclpy"):
        make_executor(1, kind="events")
