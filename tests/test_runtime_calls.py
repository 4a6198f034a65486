"""myriad_runtime.calls: nested service calls between nodes composed in one small executor complete (callbacks
await a thread of their own), where callbacks blocking on the call (the old design) starve the executor; action
clients made while their node spins leave its executor alive."""

from __future__ import annotations

import threading

import pytest
from conftest import wait_for

rclpy = pytest.importorskip("rclpy", reason="source scripts/env.sh")
from action_msgs.msg import GoalStatus  # noqa: E402
from rclpy.action import ActionServer, CancelResponse  # noqa: E402
from rclpy.action.server import ServerGoalHandle  # noqa: E402
from rclpy.callback_groups import ReentrantCallbackGroup  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from myriad_runtime.calls import (  # noqa: E402
    CallFailed,
    _Workers,
    action_client,
    call_action,
    call_service,
    destroy_node,
    end_goal,
    in_thread,
)
from myriad_runtime.container import make_executor  # noqa: E402

HOPS = 4  # hop0 -> hop1 -> hop2 -> hop3: three callbacks wait at once per request
REQUESTS = 3  # concurrent requests into hop0
FULL_CHAIN = ">".join(f"hop{i}" for i in range(HOPS))


class Hop(Node):
    """Serves `hop<i>` by calling `hop<i+1>` (the last one answers); the answer lists the hops it went through."""

    def __init__(self, i: int, context, blocking: bool, timeout: float) -> None:
        super().__init__(f"hop{i}", namespace="/calls_test", context=context)
        self.timeout, self.active = timeout, 0
        self.next = self.create_client(Trigger, f"hop{i + 1}") if i + 1 < HOPS else None
        callback = self._blocking if blocking else self._awaiting
        self.create_service(Trigger, f"hop{i}", callback, callback_group=ReentrantCallbackGroup())

    def forward(self) -> str:
        if self.next is None:
            return self.get_name()
        res = call_service(self.next, Trigger.Request(), self.timeout, check=True)
        return f"{self.get_name()}>{res.message}"

    def _blocking(self, _req, res):  # the old design: the callback itself waits for the next hop
        self.active += 1
        try:
            res.success, res.message = True, self.forward()
        except CallFailed as exc:
            res.success, res.message = False, str(exc)
        self.active -= 1
        return res

    async def _awaiting(self, _req, res):  # the new design
        self.active += 1
        try:
            res.success, res.message = True, await in_thread(self, self.forward)
        except CallFailed as exc:
            res.success, res.message = False, str(exc)
        self.active -= 1
        return res


def run_chain(blocking: bool, threads: int, timeout: float) -> list[str]:
    """REQUESTS concurrent requests through the HOPS nodes plus a caller, all in one executor of `threads`
    threads; each request's answer (or failure)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = make_executor(threads, context)  # as the container makes it
    nodes = [Hop(i, context, blocking, timeout) for i in range(HOPS)]
    caller = Node("caller", namespace="/calls_test", context=context)
    for node in [*nodes, caller]:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    answers: list[str] = [""] * REQUESTS

    def request(k: int) -> None:
        client = caller.create_client(Trigger, "hop0")
        try:
            res = call_service(client, Trigger.Request(), timeout)
            answers[k] = res.message if res.success else f"failed: {res.message}"
        except CallFailed as exc:
            answers[k] = f"failed: {exc}"

    try:
        workers = [threading.Thread(target=request, args=(k,)) for k in range(REQUESTS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for _ in range(
            int(10 * HOPS * timeout)
        ):  # let callbacks still waiting on a hop time out before shutdown
            if not any(n.active for n in nodes):
                break
            threading.Event().wait(0.1)
    finally:
        executor.shutdown(timeout_sec=5.0)
        for node in [*nodes, caller]:
            node.destroy_node()
        context.try_shutdown()
        spinner.join(timeout=5.0)
    return answers


@pytest.mark.parametrize("threads", [1, 2])
def test_nested_calls_complete_on_a_small_executor(threads):
    assert run_chain(blocking=False, threads=threads, timeout=60.0) == [FULL_CHAIN] * REQUESTS


def test_worker_threads_are_reused_never_queued_and_end_when_idle():
    """in_thread's workers: calls one after another share a thread; a call that waits for a later one still runs
    (a new thread starts when all are busy); threads left idle end."""
    workers = _Workers(idle_s=0.5)
    used: list[int] = []

    def call(then):
        return lambda: (used.append(threading.get_ident()), then())

    for _ in range(3):
        ran = threading.Event()
        workers.submit(call(ran.set))
        assert ran.wait(5.0)
        wait_for(lambda: workers._idle == 1, 5.0, "the worker idle again")
    assert len(set(used)) == 1, "a call after another did not reuse the idle thread"
    first, second = threading.Event(), threading.Event()
    workers.submit(call(lambda: second.wait(5.0) and first.set()))  # waits for the call after it
    workers.submit(call(second.set))
    assert first.wait(5.0), "a call waiting for a later one blocked it"
    assert len(set(used)) == 2
    wait_for(lambda: not any(t.ident in used for t in threading.enumerate()), 10.0, "idle workers ending")


def test_blocking_callbacks_starve_the_same_executor():
    """The control: the same chain with callbacks that block (as before) cannot complete on 2 threads."""
    answers = run_chain(blocking=True, threads=2, timeout=3.0)
    assert all(a.startswith("failed: ") and "no answer within" in a for a in answers), answers


def test_a_checked_call_raises_the_answers_message(ros_client):
    """call_service(check=True) turns an answer with success false into CallFailed naming the service and giving
    the answer's message; unchecked, the answer is returned as it is."""
    client = ros_client("/calls_test")
    node = Node("refuser", namespace="/calls_test", context=client.context)
    node.create_service(Trigger, "refuse", lambda _req, res: setattr(res, "message", "not now") or res)
    client.executor.add_node(node)
    try:
        refuse = client.node.create_client(Trigger, "refuse")
        assert call_service(refuse, Trigger.Request(), 30.0).message == "not now"
        with pytest.raises(CallFailed, match=r"^/calls_test/refuse: not now$"):
            call_service(refuse, Trigger.Request(), 30.0, check=True)
    finally:
        destroy_node(node)


class PeekingNode(Node):
    """A node that does what its executor's thread may do the moment a waitable is added: count its entities."""

    def add_waitable(self, waitable) -> None:
        super().add_waitable(waitable)
        waitable.get_num_entities()


def test_action_clients_made_on_a_spinning_node_leave_its_executor_alive(ros_client):
    """rclpy's own ActionClient is unusable for a moment after its node sees it (no lock yet), which kills an
    executor thread that looks then (ros2/rclpy#1589); one made by `action_client` is usable from that moment,
    and 100 of them made on a spinning node leave it spinning and serving."""
    from myriad_interfaces.action import ExecuteTrajectory

    client = ros_client("/calls_test")
    node = PeekingNode("spun", namespace="/calls_test", context=client.context)
    node.create_service(Trigger, "alive", lambda _req, res: setattr(res, "success", True) or res)
    client.executor.add_node(node)
    made = []
    try:
        for i in range(100):
            made.append(action_client(node, ExecuteTrajectory, f"action_{i}"))
        assert client.thread.is_alive()
        assert client.call(Trigger, "alive", Trigger.Request(), 30.0).success
    finally:
        # With its action clients: each holds the node (and its participant) until destroyed.
        destroy_node(node)


@pytest.mark.parametrize("cancelled", [None, lambda: False], ids=["plain", "cancellable"])
def test_a_goal_whose_result_times_out_is_cancelled_on_the_server(ros_client, cancelled):
    """call_action gives up on a goal after `result_timeout`: it asks the server to cancel it before raising, so
    the server stops working on a goal nobody waits for (it went on to its end)."""
    from myriad_interfaces.action import GripperCommand

    client = ros_client("/calls_test")
    node = Node("slow_server", namespace="/calls_test", context=client.context)
    goals: list[ServerGoalHandle] = []
    stop = threading.Event()  # ends the goal's work at the end of the test (without the fix no cancel comes)

    def until_cancel_requested(goal_handle: ServerGoalHandle) -> None:
        while not goal_handle.is_cancel_requested and not stop.wait(0.05):
            pass

    async def execute(goal_handle: ServerGoalHandle) -> GripperCommand.Result:
        goals.append(goal_handle)
        await in_thread(node, until_cancel_requested, goal_handle)
        end_goal(goal_handle, succeeded=True)
        return GripperCommand.Result()

    ActionServer(node, GripperCommand, "slow", execute, cancel_callback=lambda _goal: CancelResponse.ACCEPT,
                 callback_group=ReentrantCallbackGroup())  # fmt: skip
    client.executor.add_node(node)
    try:
        actions = action_client(client.node, GripperCommand, "slow")
        with pytest.raises(CallFailed, match=r"within 1 s"):
            call_action(
                actions, GripperCommand.Goal(position=0.5), 30.0, result_timeout=1.0, cancelled=cancelled
            )
        goal = wait_for(lambda: goals and not goals[0].is_active and goals[0], 10.0, "the goal to end")
        assert goal.status == GoalStatus.STATUS_CANCELED  # end_goal: canceled only on a cancel request
    finally:
        stop.set()
        destroy_node(node)
