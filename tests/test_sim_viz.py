"""What RViz needs from a back end, from real node processes: robot_description (late joiner), /tf and /tf_static
(composed here with numpy: world -> tool matches the simulator's end effector), frame ids of images, point cloud
and markers all in the tree; grasp and path markers during a real collection."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from myriad_interfaces.srv import CaptureImages, ResetWorld, StepSimulation
from myriad_sim.camera import Camera
from myriad_sim.image_codec import imgmsg_to_cv2
from myriad_sim.spec import load_world

WS = Path(__file__).resolve().parent.parent
NS = f"/viz/v{os.getpid()}"  # frame prefix "v<pid>/": the namespace's last element
P = f"v{os.getpid()}/"
LATCHED = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def quat_matrix(x, y, z, w) -> np.ndarray:
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Tree:
    """Every transform received on /tf and /tf_static, by child frame (dynamic ones by stamp too, and their
    stamps in the order they came)."""

    def __init__(self, node) -> None:
        self.lock = threading.Lock()
        self.static: dict[str, tuple[str, np.ndarray]] = {}
        self.dynamic: dict[str, dict[float, tuple[str, np.ndarray]]] = {}
        self.stamps: dict[str, list[float]] = {}
        node.create_subscription(TFMessage, "/tf", lambda m: self._add(m, False), 100)
        node.create_subscription(TFMessage, "/tf_static", lambda m: self._add(m, True), LATCHED)

    def _add(self, msg: TFMessage, static: bool) -> None:
        with self.lock:
            for t in msg.transforms:
                m = np.eye(4)
                r, p = t.transform.rotation, t.transform.translation
                m[:3, :3], m[:3, 3] = quat_matrix(r.x, r.y, r.z, r.w), (p.x, p.y, p.z)
                entry = (t.header.frame_id, m)
                if static:
                    self.static[t.child_frame_id] = entry
                else:
                    self.dynamic.setdefault(t.child_frame_id, {})[stamp_s(t.header.stamp)] = entry
                    self.stamps.setdefault(t.child_frame_id, []).append(stamp_s(t.header.stamp))

    def frames(self) -> set[str]:
        with self.lock:
            return set(self.static) | set(self.dynamic) | {p for p, _ in self.static.values()}

    def lookup(self, root: str, frame: str, stamp: float | None = None) -> np.ndarray | None:
        """Pose of `frame` in `root` at `stamp` (latest dynamic transforms when None), or None if not (yet) known."""
        out = np.eye(4)
        with self.lock:
            while frame != root:
                if frame in self.static:
                    frame, m = self.static[frame]
                elif frame in self.dynamic:
                    by_time = self.dynamic[frame]
                    key = max(by_time) if stamp is None else stamp
                    if key not in by_time:
                        return None
                    frame, m = by_time[key]
                else:
                    return None
                out = m @ out
        return out


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    import yaml
    from conftest import RosClient

    from myriad_frontend.processes import clean_shared_memory, ros_env, start_group, stop_groups

    d = tmp_path_factory.mktemp("viz")
    params = {"renderer": "tiny", "world_file": str(WS / "worlds" / "tray.yaml")}
    (d / "p.yaml").write_text(yaml.safe_dump({f"{NS}/sim_server": {"ros__parameters": params}}))
    cmd = ["python", "-m", "myriad_runtime.container", "--nodes", "myriad_sim.sim_server_node:SimServerNode"]
    cmd += [
        "--ros-args",
        "-r",
        f"__ns:={NS}",
        "-r",
        f"/clock:={NS}/clock",
        "--params-file",
        str(d / "p.yaml"),
    ]
    proc = start_group(cmd, d / "sim.log", ros_env())
    client = RosClient(NS)
    client.tree = Tree(client.node)
    client.markers, client.points = [], []
    client.node.create_subscription(MarkerArray, "markers", client.markers.append, LATCHED)
    client.node.create_subscription(PointCloud2, "camera/points", client.points.append, 10)
    client.call(ResetWorld, "reset_world", ResetWorld.Request(seed=11, object_count=3))
    yield client
    client.close()
    stop_groups([proc])
    clean_shared_memory()
    assert proc.returncode == 0, (d / "sim.log").read_text()[-2000:]


def test_robot_description_reaches_a_late_subscriber_in_the_namespace(sim):
    got = []
    sim.node.create_subscription(String, f"{NS}/robot_description", got.append, LATCHED)
    text = wait_for(lambda: got[0].data if got else None, what="robot_description")
    assert '<robot name="iiwa_wsg50">' in text and 'filename="file:///' in text
    assert 'filename="pybullet_data:' not in text


def test_tf_world_to_tool_matches_the_simulators_end_effector(sim):
    for steps in (7, 60):
        res = sim.call(StepSimulation, "step_simulation", StepSimulation.Request(steps=steps, gripper=-1.0))
        assert res.success
        t = stamp_s(res.sim_time)
        pose = wait_for(lambda t=t: sim.tree.lookup(P + "world", P + "tool", t), what=f"/tf at sim time {t}")
        p, o = res.end_effector.position, res.end_effector.orientation
        assert np.linalg.norm(pose[:3, 3] - (p.x, p.y, p.z)) < 0.001
        rot = quat_matrix(o.x, o.y, o.z, o.w)
        assert np.degrees(np.arccos(np.clip((np.trace(rot.T @ pose[:3, :3]) - 1) / 2, -1, 1))) < 0.1


def test_every_link_object_and_camera_frame_is_in_the_tree(sim):
    links = {"lbr_iiwa_link_0", "lbr_iiwa_link_7", "base_link", "left_finger_tip", "right_finger_tip"}
    want = {P + n for n in links | {"world", "tool", "camera_link", "camera_optical", "tray", "table"}}
    want |= {f"{P}object_{k}" for k in range(3)}
    wait_for(lambda: want <= sim.tree.frames(), what=f"frames {sorted(want - sim.tree.frames())}")
    optical = sim.tree.lookup(P + "world", P + "camera_optical")
    spec = load_world(WS / "worlds" / "tray.yaml").camera
    assert np.allclose(optical[:3, 3], spec.position)
    assert np.allclose(optical[:3, 2], np.subtract(spec.target, spec.position) / 1.0)  # z looks at the tray


def test_images_and_point_cloud_in_the_camera_optical_frame(sim):
    res = sim.call(CaptureImages, "capture_images", CaptureImages.Request())
    headers = [res.rgb.header, res.depth.header, res.segmentation.header, res.camera_info.header]
    assert {h.frame_id for h in headers} == {P + "camera_optical"}
    cloud = wait_for(
        lambda: next((c for c in sim.points if c.header.stamp == res.rgb.header.stamp), None), what="points"
    )
    assert cloud.header.frame_id == P + "camera_optical" and cloud.width > 10000
    xyz = np.frombuffer(bytes(cloud.data), dtype=np.float32).reshape(-1, 4)[:, :3].astype(float)
    world = sim.tree.lookup(P + "world", P + "camera_optical")
    points = xyz @ world[:3, :3].T + world[:3, 3]
    # The same pixels deprojected by the camera model: the cloud (2x2 stride) through TF lands on them.
    depth = imgmsg_to_cv2(res.depth)
    camera = Camera(load_world(WS / "worlds" / "tray.yaml").camera)
    vs, us = np.mgrid[0 : depth.shape[0] : 2, 0 : depth.shape[1] : 2]
    keep = depth[::2, ::2] < camera.spec.far * 0.999
    expected = camera.deproject(us[keep], vs[keep], depth[::2, ::2][keep]).T
    assert np.abs(points - expected).max() < 0.001
    assert np.percentile(points[:, 2], 10) < 0.05  # mostly the tray and table below the camera


def test_markers_name_existing_frames_and_mesh_files(sim):
    arrays = wait_for(lambda: list(sim.markers) or None, what="markers")
    markers = [m for a in arrays for m in a.markers if m.action == Marker.ADD]
    assert {"workspace", "tray", "table"} <= {m.ns for m in markers}
    objects = [m for m in markers if m.ns.startswith("object_")]
    assert objects and all(m.type == Marker.MESH_RESOURCE and m.frame_locked for m in objects)
    assert all(Path(m.mesh_resource.removeprefix("file://")).is_file() for m in objects)
    frames = wait_for(lambda: {m.header.frame_id for m in markers} <= sim.tree.frames() and sim.tree.frames())
    assert {m.header.frame_id for m in markers} <= frames


@pytest.mark.timeout(400)
def test_two_backends_during_a_collection_in_their_own_namespaces_and_frames(
    tmp_path, ros_client, storage_local_server, start_collect
):
    """A real 2-back-end collection: each namespace gets its robot_description, markers (grasps coloured by
    outcome, planned paths) and point clouds, every frame id prefixed with its own back end and in the TF tree;
    over several attempts (resets) each back end's transforms come with stamps that only go forward."""
    got = {}
    for b in ("b0", "b1"):
        client = ros_client(f"/myriad/{b}")
        got[b] = {"tree": Tree(client.node), "markers": [], "description": [], "points": []}
        client.node.create_subscription(MarkerArray, "markers", got[b]["markers"].append, LATCHED)
        client.node.create_subscription(String, "robot_description", got[b]["description"].append, LATCHED)
        client.node.create_subscription(PointCloud2, "camera/points", got[b]["points"].append, 10)

    def added(g: dict) -> list[Marker]:
        return [m for a in list(g["markers"]) for m in a.markers if m.action == Marker.ADD]

    def graspsets(g: dict) -> int:
        return sum(any(m.ns == "grasp" for m in a.markers) for a in list(g["markers"]))

    def arrived() -> bool:
        return all(
            g["description"]
            and g["points"]
            and {"grasp", "path"} <= {m.ns for m in added(g)}
            and {m.header.frame_id for m in added(g)} <= g["tree"].frames()
            and len([f for f in g["tree"].frames() if f.startswith(f"{b}/")]) > 15
            and graspsets(g) >= 2  # two attempts: a reset between them
            for b, g in got.items()
        )

    # A run long enough for any host, interrupted once both back ends' messages are here: a fixed short run (10
    # attempts, ~3 s of attempts on a fast host) let this process miss a back end's description or point clouds in
    # 3 of 14 runs here and once in CI, when discovery took longer than the run.
    log = tmp_path / "collect.log"
    args = ("--attempts", "1000", "--backends", "2", "--seed", "3", "--name", "viz", "--quiet")
    proc = start_collect(storage_local_server.uri, log, *args)
    wait_for(lambda: arrived() or proc.poll() is not None, timeout=240, what="both back ends' messages")
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    code = proc.wait(timeout=120)
    assert code in (0, 130), log.read_text()[-3000:]  # done, or interrupted by us
    for b, g in got.items():
        assert g["description"] and "iiwa_wsg50" in g["description"][0].data
        markers = added(g)
        grasps = [m for m in markers if m.ns == "grasp"]
        paths = [m for m in markers if m.ns == "path"]
        assert grasps and paths and all(len(m.points) >= 2 for m in paths)
        assert {m.header.frame_id for m in grasps + paths} == {f"{b}/world"}
        colours = {(round(m.color.r, 2), round(m.color.g, 2)) for m in grasps}
        assert colours <= {(0.1, 0.8), (0.9, 0.15)}  # green success / red failure
        assert all(m.header.frame_id.startswith(f"{b}/") for m in markers)
        assert {m.header.frame_id for m in markers} <= g["tree"].frames()
        assert g["points"] and {pc.header.frame_id for pc in g["points"]} == {f"{b}/camera_optical"}
        # the sim clock runs on across resets: tf2 would drop a repeated stamp, and RViz reset on a jump back
        for frame, stamps in g["tree"].stamps.items():
            if frame.startswith(f"{b}/"):
                assert all(s < t for s, t in zip(stamps, stamps[1:])), (frame, stamps)
    # one RViz, both back ends: every frame on /tf is prefixed, and each back end's frames hang off its own world
    tree = got["b0"]["tree"]
    assert all("/" in f for f in tree.frames()), sorted(tree.frames())  # (this module's other sim: v<pid>/)
    for b in ("b0", "b1"):
        mine = {f for f in tree.frames() if f.startswith(f"{b}/")}
        assert len(mine) > 15 and all(tree.lookup(f"{b}/world", f) is not None for f in mine)


def test_rviz_config_shows_back_end_b0_and_colcon_meta_is_valid():
    import json

    import yaml

    config = yaml.safe_load((WS / "config" / "myriad.rviz").read_text())["Visualization Manager"]
    assert config["Global Options"]["Fixed Frame"] == "b0/world"
    topics = {
        d["Class"].split("/")[-1]: d.get("Topic", d.get("Description Topic", {})).get("Value")
        for d in config["Displays"]
        if d["Enabled"]
    }
    assert topics["RobotModel"] == "/myriad/b0/robot_description"
    assert topics["MarkerArray"] == "/myriad/b0/markers"
    assert topics["PointCloud2"] == "/myriad/b0/camera/points"
    assert topics["Image"] == "/myriad/b0/camera/rgb/image"
    meta = json.loads((WS / "colcon.meta").read_text())
    assert set(meta["names"]) == {"myriad_interfaces", "tf2_msgs"}


def test_frame_prefix_is_the_namespace_last_element():
    from myriad_sim.frames import frame_prefix

    assert frame_prefix("/myriad/b0") == "b0/"
    assert frame_prefix("/myriad/b12/") == "b12/"
    assert frame_prefix("/") == ""
