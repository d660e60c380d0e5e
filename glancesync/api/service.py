"""What the API does, without HTTP: region statuses, tasks, authentication.

The HTTP layer (app.py) only maps these calls and their exceptions to responses.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from glancesync import lock
from glancesync.api.auth import AuthError, KeystoneLookup, TokenCache, TokenInfo, authorize
from glancesync.api.db import SYNCING, TaskStore, TaskView, make_engine, this_owner
from glancesync.api.tasks import INTERRUPTED, TaskPool, owner_is_dead
from glancesync.cli import facade_factory
from glancesync.config import Credentials, Settings, load_settings, validate_credentials
from glancesync.exceptions import ConfigError
from glancesync.facade.base import Facade
from glancesync.runner import RegionRef, Runner
from glancesync.status import RegionStatus

log = logging.getLogger("glancesync.api")

DEAD_SERVER = "interrupted: the server stopped while the task was running"


class BadRegion(Exception):
    """Not a region glancesync can synchronise (HTTP 410)."""


class NotFound(Exception):
    """No such task in that region (HTTP 404)."""


class Conflict(Exception):
    """The task cannot be deleted now (HTTP 409)."""


@dataclass(frozen=True)
class Options:
    """The server's options (from the command line; see main.py)."""

    config_file: str | None = None
    overrides: tuple[str, ...] = ()
    offline: str | None = None
    database: str = ""
    role: str = "admin"
    auth: str = "keystone"  # or "noauth" (tests, benchmarks: everyone is an admin)
    auth_cloud: str | None = None  # clouds.yaml entry validating tokens (else [master]'s)
    max_tasks: int = 2
    token_cache_ttl: float = 300.0
    shutdown_timeout: float = 60.0
    lock_file: str | None = None  # the CLI's --lock-file, when its runs use one


NOAUTH_USER = TokenInfo("noauth", "anonymous", None, None, frozenset(), None)


class Service:
    def __init__(self, options: Options, settings: Settings, store: TaskStore) -> None:
        self.options = options
        self.settings = settings
        self.store = store
        self.started = datetime.now(timezone.utc)
        self._make_facade = facade_factory(settings, options.offline)
        # Status requests share one facade per target (one token, pooled connections);
        # every task builds its own (a sync runs long and must not share a session's state).
        self._facades: dict[str, Facade] = {}
        self._facades_lock = threading.Lock()
        self.pool = TaskPool(store, self._task_runner, options.max_tasks, self._run_lock)
        self.tokens: TokenCache | None = None
        if options.auth == "keystone":
            self.tokens = TokenCache(self._token_lookup(), options.token_cache_ttl)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.store.create_schema()
        me = this_owner()
        dead = self.store.mark_dead_tasks(lambda o, age: owner_is_dead(o, age, me), DEAD_SERVER)
        for task_id in dead:
            log.warning(f"task {task_id}: its server stopped while it ran: marked failed")
        self.pool.start()

    def stop(self) -> None:
        self.pool.stop(self.options.shutdown_timeout)
        self.store.engine.dispose()

    # -- authentication -------------------------------------------------------------------
    def _token_lookup(self) -> KeystoneLookup:
        from keystoneauth1 import session as ksa_session

        from glancesync.facade.keystone import access

        if self.options.auth_cloud:
            # A service account of its own (Keystone lets only the token's owner, a
            # 'service' or an admin user validate a token): a clouds.yaml entry.
            found = access("--auth-cloud", Credentials(cloud=self.options.auth_cloud))
        else:
            found = access("master", validate_credentials(self.settings, "master"))
        session = ksa_session.Session(
            auth=found.auth, verify=found.verify, cert=found.cert, timeout=30
        )
        return KeystoneLookup(session, found.interface)

    def authenticate(self, token: str | None) -> TokenInfo:
        """Who sends this token, if allowed (AuthError 401/403; KeystoneUnavailable)."""
        if self.tokens is None:
            return NOAUTH_USER
        info = self.tokens.validate(token)
        authorize(info, self.options.role)
        return info

    # -- regions --------------------------------------------------------------------------
    def _shared_facade(self, target: str) -> Facade:
        with self._facades_lock:
            if target not in self._facades:
                self._facades[target] = self._make_facade(target)
            return self._facades[target]

    def _run_lock(self) -> AbstractContextManager[None]:
        """The lock a ``glancesync`` run of this configuration takes (as the CLI does)."""
        if self.options.lock_file:
            return lock.hold(self.options.lock_file)
        path = lock.default_lock_path(self.settings, self.options.offline)
        if self.options.offline:
            return lock.hold(path)
        return lock.hold(path, lambda: lock.peer_paths(path))

    def _task_runner(self) -> Runner:
        return Runner(self.settings, self._make_facade)

    def resolve(self, runner: Runner, region: str) -> RegionRef:
        """The region as the command line names it (``Region``, ``target:Region``)."""
        target, _, name = region.rpartition(":")
        if not name or target.endswith(":"):
            raise BadRegion(f"Bad region: {region}")
        try:
            refs = runner.region_list([region])
        except ConfigError as exc:
            raise BadRegion(f"Bad region: {exc}") from None
        return refs[0]

    def status(self, region: str, image: str | None = None) -> list[dict[str, Any]]:
        """The status of every selected master image there (as ``--show-status``)."""
        runner = Runner(self.settings, self._shared_facade)
        ref = self.resolve(runner, region)
        statuses: list[RegionStatus] = []
        runner.status([ref], statuses.append)
        if not statuses:  # the region could not be listed: status() logged why
            raise RegionUnavailable(f"{ref.fullname}: the region's images cannot be listed")
        return [
            {"id": s.dest_id, "name": s.image, "status": s.status, "message": s.problem or None}
            for s in statuses[0].images
            if image is None or s.image == image
        ]

    # -- tasks ----------------------------------------------------------------------------
    def start_task(self, region: str, who: TokenInfo) -> str:
        runner = Runner(self.settings, self._shared_facade)
        ref = self.resolve(runner, region)
        task_id, created = self.store.start_task(ref.fullname, who.requester)
        if created:
            log.info(f"task {task_id}: {ref.fullname} requested by {who.requester}")
            self.pool.submit(task_id, ref)
        return task_id

    def task(self, region: str, task_id: str) -> TaskView:
        found = self.store.get_task(task_id)
        if found is None or not _same_region(found.region, region):
            raise NotFound("Item not found")
        return found

    def delete_task(self, region: str, task_id: str) -> None:
        found = self.task(region, task_id)
        if found.status == SYNCING:
            raise Conflict(f"task {task_id} is still syncing: delete it once it has finished")
        self.store.delete_task(task_id)


def build_service(options: Options) -> Service:
    """Settings + database + service for ``options`` (ConfigError when they are wrong)."""
    settings = load_settings(options.config_file, list(options.overrides))
    if not options.offline:
        validate_credentials(settings, "master")
    return Service(options, settings, TaskStore(make_engine(options.database)))


class RegionUnavailable(Exception):
    """The region's cloud did not answer (HTTP 502)."""


def _same_region(stored: str, asked: str) -> bool:
    """``master:Region`` and ``Region`` name the same region of the master target."""
    return stored == asked or stored == asked.removeprefix("master:")


__all__ = ["AuthError", "INTERRUPTED", "Options", "Service"]
