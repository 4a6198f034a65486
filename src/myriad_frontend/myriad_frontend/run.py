"""A campaign run on this host, shared by `myriad collect` and `ros2 launch launch/backends.launch.py`:
the campaign created or resumed, its run directory held, its own DDS domain, its back ends planned, and what
happens when a back end dies (leases released at once; a crash loop ends the run)."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from myriad_frontend.campaign import CampaignSpec
from myriad_frontend.description import Description
from myriad_frontend.plan import ProcessPlan, backend_env, plan_backend
from myriad_frontend.processes import CrashGuard
from myriad_runtime import workspace
from myriad_runtime.isolation import DomainClaim, HeldLock, claim_domain, lock_run
from myriad_storage.store import StorageUnavailable, Store, mask_uri


class CrashLoop(RuntimeError):
    """A back end keeps dying before it stores anything: restarting it again would not help."""


def release_leases(store: Store, campaign: str, backend: str) -> int:
    """Hand the items a dead back end held back to the pool at once (instead of waiting for lease expiry)."""
    return sum(
        store.release(item["item_id"], backend)
        for item in store.work_items(campaign, state="leased")
        if item.get("lease_owner") == backend
    )


@dataclass
class Run:
    """A campaign running from this workspace. Holds its run directory and its DDS domain until closed."""

    store: Store
    spec: CampaignSpec
    uri: str
    database: str
    run_dir: Path
    domain: DomainClaim
    lock: HeldLock
    guards: dict[str, CrashGuard] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The back ends' environment: this run's domain, the workspace, the database URI."""
        return backend_env(workspace(), self.domain.domain_id, self.uri)

    @property
    def values(self) -> dict[str, str]:
        """The ${...} values of the description that every back end of the run shares."""
        return {"ws": str(workspace()), "database": self.database, "campaign": self.spec.name}

    def plan(self, desc: Description, index: int, python: str = sys.executable) -> list[ProcessPlan]:
        """The processes of back end `index` of this run (see plan.plan_backend)."""
        return plan_backend(desc, index, self.values, self.run_dir, self.env, python)

    def backend_exited(self, backend: str, what: str, action: str, logs: str | None = None) -> str:
        """A process of `backend` exited (`what`: which, with its code) and is restarted (`action`, for the note):
        release its leases and return a note for the log; raises CrashLoop when the back end keeps dying with
        nothing stored in between (naming `logs`, default the back end's run directory)."""
        guard = self.guards.setdefault(backend, CrashGuard())
        try:
            done = self.store.progress(self.spec.name)["done"]
        except StorageUnavailable:
            done = guard.done_at_exit
        if guard.exited(done):
            raise CrashLoop(
                f"back end {backend} died {guard.streak} times in a row with no attempt stored ({what}); "
                f"see its logs in {logs or self.run_dir / backend}"
            )
        note = f"back end {backend}: {what}; {action}"
        try:
            released = release_leases(self.store, self.spec.name, backend)
            self.store.heartbeat(backend, campaign=self.spec.name, last_error=f"exited: {what}")
            return note + f", {released} lease(s) released"
        except StorageUnavailable:
            return note + "; its leases expire by themselves (database unreachable)"

    def release_leases(self, backends: list[str]) -> int:
        """After the back ends stopped: their unfinished items back to the pool (0 if the database is down)."""
        try:
            return sum(release_leases(self.store, self.spec.name, b) for b in backends)
        except StorageUnavailable:
            return 0

    def close(self) -> None:
        self.domain.release()
        self.lock.release()


def run_directory(runs_dir: Path, campaign: str, uri: str, database: str) -> Path:
    """`runs_dir/<campaign>/<database>-<server hash>`: stable, so attempts an earlier run spooled while the
    database was down are replayed by the next run of the same campaign, and only into the same database."""
    server = hashlib.sha256(mask_uri(uri).encode()).hexdigest()[:8]
    return Path(runs_dir) / campaign / f"{database}-{server}"


def open_run(
    store: Store, spec: CampaignSpec, uri: str, database: str, runs_dir: Path, domain: str | int | None = None
) -> Run:
    """Hold the campaign's run directory (see run_dir), claim a DDS domain (`domain` if given, else a free one),
    then create or resume the campaign."""
    run_dir = run_directory(runs_dir, spec.name, uri, database)
    lock = lock_run(run_dir, spec.name)
    try:
        claim = claim_domain(domain, run=spec.name, workspace=str(workspace()))
    except BaseException:
        lock.release()
        raise
    try:
        store.create_campaign(spec.name, spec.items, template=spec.params, seed=spec.seed)
    except BaseException:
        claim.release()
        lock.release()
        raise
    return Run(store, spec, uri, database, run_dir, claim, lock)
