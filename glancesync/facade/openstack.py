"""The real cloud: a keystoneauth1 session (Keystone v3) + python-glanceclient v2.

One facade per target. Regions come from the target's service catalog (``image``
endpoints of the configured interface); every Glance call goes to that region's endpoint.
Errors become one-line :class:`FacadeError` messages naming the region, never tracebacks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import glanceclient
import requests
import urllib3
from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import session as ksa_session

from glancesync.exceptions import FacadeError, SourceMismatch
from glancesync.facade import keystone
from glancesync.facade.base import CORE_CHANGES, Facade, MetadataChanges
from glancesync.image import Image, is_user_property

if TYPE_CHECKING:
    from glancesync.config import Credentials
    from glancesync.transfer import ImageSource

LOG = logging.getLogger("glancesync")

PAGE_SIZE = 1000  # Glance caps it (api_limit_max, 1000 by default); fewer round trips
CHUNK_SIZE = 1024 * 1024
# Transfers: urllib3 uses the *connect* timeout as the socket timeout while it sends a
# request body, so a short one would abort an upload whenever the destination pauses for
# a moment; the read timeout bounds the silence while waiting for bytes or the answer.
TRANSFER_MIN_CONNECT_TIMEOUT = 60
TRANSFER_READ_TIMEOUT = 600
JSON_PATCH = "application/openstack-images-v2.1-json-patch"
DEFAULT_RETRIES = 3
RETRIABLE_STATUSES = (502, 503, 504)


def _from_response(response: requests.Response, body: Any = None) -> Exception:
    """glanceclient's ``exc.from_response`` for error bodies of any shape.

    It expects Glance's nested JSON (``{"error": {"message": ...}}``); a flat JSON body, as
    some gateways and proxies answer, made it raise AttributeError ("'str' object has no
    attribute 'get'") instead of the HTTP error, which then hid the status and the cause.
    """
    try:
        return _glance_from_response(response, body)
    except (AttributeError, TypeError, ValueError):
        cls = glance_exc._code_map.get(response.status_code, glance_exc.HTTPException)
        text = " ".join(response.text.split())[:300]
        return cls(details=f"{response.status_code} {response.reason}: {text}")


_glance_from_response = glance_exc.from_response
glance_exc.from_response = _from_response  # glanceclient's http module looks it up there

class OpenStackFacade(Facade):
    """Glance v2 regions of one target, reached through one Keystone v3 session."""

    def __init__(
        self,
        target_name: str,
        credentials: Credentials,
        timeout: int = 30,
        retries: int = DEFAULT_RETRIES,
        transfer_timeout: int = TRANSFER_READ_TIMEOUT,
    ) -> None:
        super().__init__(target_name)
        self.timeout = timeout
        self.retries = retries
        access = keystone.access(target_name, credentials)
        # The interface in use, wherever it came from (file, clouds.yaml, OS_INTERFACE).
        self.credentials = dataclasses.replace(credentials, interface=access.interface)
        self._access = access
        auth, verify, cert = access.auth, access.verify, access.cert
        # One session (hence one token) for the whole target; ``timeout`` (the listing
        # timeout) is the default for every request; uploads, downloads and deletes (a
        # multi-GB delete on a Ceph or Swift store takes long) pass the transfer timeout.
        self._session = ksa_session.Session(auth=auth, verify=verify, cert=cert, timeout=timeout)
        self._transfer_timeout = (
            max(timeout, TRANSFER_MIN_CONNECT_TIMEOUT),
            max(timeout, transfer_timeout),
        )
        self._clients: dict[str, Any] = {}
        self._project_id: str | None = None

    # -- target level ------------------------------------------------------------------
    def regions(self) -> list[str]:
        interface = self.credentials.interface
        try:
            catalog = self._session.auth.get_access(self._session).service_catalog
            endpoints = catalog.get_endpoints(service_type="image", interface=interface)
        except Exception as exc:
            raise FacadeError(
                f"{self.target_name}: Error retrieving the region list. Cause: {self._cause(exc)}"
            ) from exc
        names = {e.get("region_id") or e.get("region") for e in endpoints.get("image", [])}
        return sorted(name for name in names if name)

    def tenant_id(self) -> str:
        if self._project_id is None:
            try:
                project_id = self._session.get_project_id()
            except Exception as exc:
                raise FacadeError(
                    f"{self.target_name}: Error retrieving the project id. "
                    f"Cause: {self._cause(exc)}"
                ) from exc
            if not project_id:
                raise FacadeError(f"{self.target_name}: the token is not scoped to a project.")
            self._project_id = project_id
        return self._project_id

    # -- listing -----------------------------------------------------------------------
    def list_images(self, region: str) -> list[Image]:
        fullname = self.fullname(region)
        try:
            raw_images = self._list_raw(region)
        except Exception as exc:
            if _is_timeout(exc):
                raise FacadeError(
                    f"{fullname}: Timeout while retrieving image list (after {self.timeout} s)."
                ) from exc
            raise FacadeError(
                f"{fullname}: Error retrieving image list. Cause: {self._cause(exc)}"
            ) from exc
        return [_to_image(raw, fullname) for raw in raw_images]

    def _list_raw(self, region: str) -> list[dict[str, Any]]:
        """The default listing plus the hidden images (which it leaves out), by id."""
        images = self._client(region).images
        found: dict[str, dict[str, Any]] = {}
        # os_hidden=true lists *only* the hidden ones, so two listings are needed to see
        # every name that could clash with an upload.
        for filters in ({}, {"os_hidden": "true"}):
            for raw in images.list(page_size=PAGE_SIZE, filters=dict(filters)):
                found.setdefault(raw["id"], dict(raw))
        return list(found.values())

    # -- writes ------------------------------------------------------------------------
    def get_image(self, region: str, image_id: str) -> Image | None:
        try:
            raw = _get_raw(self._client(region), image_id)
        except glance_exc.HTTPNotFound:
            return None
        except Exception as exc:
            what = f"{self.fullname(region)}: Reading image {image_id} failed"
            raise self._error(what, exc) from exc
        return _to_image(raw, self.fullname(region))

    def upload_image(self, region: str, image: Image, source: ImageSource) -> Image:
        fullname = self.fullname(region)
        failed = f"{fullname}: Upload of {source.master.name} failed"
        client, image_id = self._create(region, image, failed)
        try:
            self._put_file(client, image_id, source)
            raw = _get_raw(client, image_id)
        except BaseException as exc:
            # Never leave a queued/killed half image behind, whatever stopped us.
            self._delete_after_failure(client, fullname, image_id, source.master.name)
            if not isinstance(exc, Exception):
                raise  # an interruption: stop the run, do not go on
            error = exc.error if isinstance(exc, _SourceFailure) else exc
            if isinstance(error, SourceMismatch):  # the upload was aborted on purpose
                raise SourceMismatch(f"{fullname}: {error}") from error
            if isinstance(exc, _SourceFailure):
                raise FacadeError(f"{failed}. Cause: {exc}") from exc
            raise self._error(failed, exc, during="upload") from exc
        return _to_image(raw, fullname)

    def _put_file(self, client: Any, image_id: str, source: ImageSource) -> None:
        reader = _ChunkReader(source)
        try:
            # A streamed body cannot be sent twice: keystoneauth must not retry this
            # request; the executor retries the whole upload from its source instead.
            client.http_client.put(
                f"/v2/images/{image_id}/file",
                headers=_upload_headers(source.master.size),
                data=reader,
                timeout=self._transfer_timeout,
                connect_retries=0,
                status_code_retries=0,
            )
        except Exception as exc:
            # A failing source surfaces as a broken request: report the source's error.
            if reader.error is not None and reader.error is not exc:
                raise _SourceFailure(source.description, reader.error) from reader.error
            raise
        finally:
            reader.close()

    def _create(self, region: str, image: Image, failed: str) -> tuple[Any, str]:
        """Create the image record. Whatever stops the create (an error after Glance made
        the record, or an interruption while waiting for its answer), the record it may
        have made is deleted, so not even a marked leftover waits for the next run."""
        try:
            client = self._client(region)
        except Exception as exc:
            raise self._error(failed, exc) from exc
        image_id = str(uuid.uuid4())
        try:
            _create(client, image_id, image)
        except BaseException as exc:
            if not isinstance(exc, glance_exc.HTTPConflict):  # that id is someone else's
                self._delete_after_failure(client, self.fullname(region), image_id, image.name)
            if not isinstance(exc, Exception):
                raise  # an interruption: stop the run, do not go on
            raise self._error(failed, exc) from exc
        return client, image_id

    def _delete_after_failure(
        self, client: Any, fullname: str, image_id: str, name: str | None
    ) -> None:
        try:
            client.images.delete(image_id)
        except glance_exc.HTTPNotFound:
            pass
        except Exception as exc:
            LOG.error(
                "%s: Could not delete image %s left by the failed upload of %s. Cause: %s",
                fullname,
                image_id,
                name,
                self._cause(exc),
            )

    def update_image(self, region: str, image_id: str, changes: MetadataChanges) -> None:
        ops = _patch_operations(changes)
        if not ops:
            return
        try:
            _patch(self._client(region), image_id, ops)
        except Exception as exc:
            raise self._error(f"{self.fullname(region)}: Update of {image_id} failed", exc) from exc

    def delete_image(self, region: str, image_id: str) -> None:
        client = None
        try:
            client = self._client(region)
            client.http_client.delete(f"/v2/images/{image_id}", timeout=self._transfer_timeout)
        except glance_exc.HTTPNotFound:
            return  # gone already: a retried delete whose first answer was lost
        except Exception as exc:
            what = f"{self.fullname(region)}: Deletion of image {image_id} failed"
            error = self._error(what, exc)
            forbidden = isinstance(exc, glance_exc.HTTPForbidden)
            if forbidden and client is not None and _is_protected(client, image_id):
                error = FacadeError(
                    f"{self.fullname(region)}: Deletion of image {image_id} failed. Cause: the "
                    f"image is protected (unprotect it first): {self._cause(exc)}"
                )
            raise error from exc

    # -- server-side copy (glance-download) ---------------------------------------------
    def server_copy_unavailable(self, region: str, source_region: str) -> str | None:
        try:
            if source_region not in self.regions():
                return f"region {source_region} is not in the catalog of {self._keystone_name()}"
            _resp, body = self._client(region).http_client.get("/v2/info/import")
        except Exception as exc:
            return f"GET /v2/info/import failed: {self._cause(exc)}"
        methods = ((body or {}).get("import-methods") or {}).get("value") or []
        if "glance-download" not in methods:
            return f"its import methods are {', '.join(methods) or 'none'}"
        return None

    def copy_from_region(
        self, region: str, image: Image, source_region: str, source_id: str
    ) -> Image:
        fullname = self.fullname(region)
        failed = f"{fullname}: Server-side copy of {image.name} from {source_region} failed"
        client, image_id = self._create(region, image, failed)
        try:
            method = {
                "name": "glance-download",
                "glance_image_id": source_id,
                "glance_region": source_region,
                "glance_service_interface": self.credentials.interface,
            }
            client.http_client.post(f"/v2/images/{image_id}/import", data={"method": method})
            raw = self._wait_for_import(client, image_id, image.size)
        except BaseException as exc:
            self._delete_after_failure(client, fullname, image_id, image.name)
            if not isinstance(exc, Exception):
                raise  # an interruption: stop the run, do not go on
            raise self._error(failed, exc) from exc
        return _to_image(raw, fullname)

    def _wait_for_import(self, client: Any, image_id: str, size: int) -> dict[str, Any]:
        """Poll until the region has imported the image; its task's error otherwise."""
        # The region reads at its own pace: allow the transfer timeout plus 10 MB/s.
        deadline = time.monotonic() + self._transfer_timeout[1] + size / 10e6
        delay = 0.2
        while True:
            raw = _get_raw(client, image_id)
            status = raw.get("status")
            # Active, and the import task has let go of the image (its last writes are
            # done): a metadata change now cannot race with them.
            if status == "active" and not raw.get("os_glance_import_task"):
                return raw
            # The import lock property stays while the import task runs; queued
            # without it means the task ended without activating the image.
            ended = status == "queued" and not raw.get("os_glance_import_task")
            if ended or status in ("killed", "deleted") or raw.get("os_glance_failed_import"):
                raise _ImportFailed(f"the import ended with status {status}" + _task_error(
                    client, image_id
                ))
            if time.monotonic() > deadline:
                raise _ImportFailed(f"the import did not finish in time (status {status})")
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    # -- reading bytes -----------------------------------------------------------------
    def download(self, region: str, image_id: str) -> Iterator[bytes]:
        """Stream ``GET /v2/images/{id}/file`` in 1 MiB chunks (nothing is buffered)."""
        fullname = self.fullname(region)
        try:
            # A GET with no Content-Type is an octet-stream request: glanceclient asks for
            # a streamed response. No checksum here: ImageSource hashes what it reads.
            resp, _ = self._client(region).http_client.get(
                f"/v2/images/{image_id}/file", timeout=self._transfer_timeout
            )
        except Exception as exc:
            raise FacadeError(
                f"{fullname}: Download of image {image_id} failed. Cause: {self._cause(exc)}"
            ) from exc
        try:
            if resp.status_code == 204:
                raise FacadeError(f"{fullname}: Image {image_id} has no data to download.")
            yield from _iter_body(resp, fullname, image_id)
        finally:
            resp.close()  # also when the consumer stops early (failed upload)

    # -- helpers -----------------------------------------------------------------------
    def _client(self, region: str) -> Any:
        if region not in self._clients:
            # Resolve the endpoint (authenticating if needed) before glanceclient does: its
            # error path authenticates again, which doubles a Keystone timeout.
            interface = self.credentials.interface
            if not self._session.get_endpoint(
                service_type="image", region_name=region, interface=interface
            ):
                raise ksa_exc.EndpointNotFound(f"no {interface} image endpoint for region {region}")
            client = glanceclient.Client(
                "2",
                session=self._session,
                region_name=region,
                interface=self.credentials.interface,
                # keystoneauth retries connection failures and these statuses, with an
                # exponential delay from 0.5 s; a streamed upload opts out per request.
                connect_retries=self.retries,
                status_code_retries=self.retries,
                retriable_status_codes=list(RETRIABLE_STATUSES),
            )
            _robust_errors(client.http_client)
            self._clients[region] = client
        return self._clients[region]

    def _error(self, what: str, exc: BaseException, during: str = "") -> FacadeError:
        """``what``. Cause: <cause>, transient when trying again may work."""
        cause = self._cause(exc)
        reset = _reset_cause(exc)
        if during and reset is not None:
            cause = f"connection reset during {during}: {reset}"
        return FacadeError(f"{what}. Cause: {cause}", transient=_is_transient(exc))

    def _cause(self, exc: BaseException) -> str:
        if isinstance(exc, ksa_exc.Unauthorized):
            return (
                f"Keystone {self._keystone_name()} rejected the credentials of "
                f"{self._who()}: {_one_line(exc)}"
            )
        if isinstance(exc, ksa_exc.EndpointNotFound):
            return f"{_one_line(exc)} (catalog of {self._keystone_name()})"
        if _is_timeout(exc):
            text = _one_line(exc)
            return text if "timed out" in text.lower() else f"timed out: {text}"
        reset = _reset_cause(exc)
        if reset is not None:  # the connection was made, then lost: no "finding address"
            return f"connection reset: {reset}"
        return _connect_failure(exc) or _one_line(exc)

    def _keystone_name(self) -> str:
        return self._access.keystone

    def _who(self) -> str:
        return self._access.who


# -- Glance helpers -------------------------------------------------------------------
def _create_fields(image: Image) -> dict[str, Any]:
    fields: dict[str, Any] = {
        key: value for key, value in image.properties.items() if is_user_property(key)
    }
    fields.update(
        name=image.name,
        visibility=image.visibility,
        os_hidden=image.hidden,
        min_ram=int(image.min_ram or 0),
        min_disk=int(image.min_disk or 0),
        protected=False,  # set once the copy is verified and in place (executor)
    )
    for key in ("disk_format", "container_format"):
        if getattr(image, key):
            fields[key] = getattr(image, key)
    return fields


def _create(client: Any, image_id: str, image: Image) -> None:
    """POST the image with an id of our choosing: a create retried after a lost answer
    then meets 409 instead of making a second image, and a create cut short can be
    cleaned up by that id."""
    try:
        client.http_client.post("/v2/images", data={"id": image_id, **_create_fields(image)})
    except glance_exc.HTTPConflict:
        if _get_raw(client, image_id).get("name") != image.name:
            raise


def _upload_headers(size: int) -> dict[str, str]:
    headers = {"Content-Type": "application/octet-stream"}
    if size:
        headers["x-openstack-image-size"] = str(size)  # lets Glance check quotas up front
    return headers


def _get_raw(client: Any, image_id: str) -> dict[str, Any]:
    resp, body = client.http_client.get(f"/v2/images/{image_id}")
    return dict(body)


def _patch(client: Any, image_id: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    """One PATCH with exactly ``ops``; returns the image as Glance answers."""
    resp, body = client.http_client.patch(
        f"/v2/images/{image_id}", headers={"Content-Type": JSON_PATCH}, data=json.dumps(ops)
    )
    return dict(body or {})


def _patch_operations(changes: MetadataChanges) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for key in CORE_CHANGES:
        if key in changes:
            ops.append({"op": "replace", "path": f"/{key}", "value": changes[key]})
    for key in sorted(k for k in changes if k not in CORE_CHANGES):
        value = changes[key]
        path = "/" + key.replace("~", "~0").replace("/", "~1")  # JSON pointer escaping
        if value is None:
            ops.append({"op": "remove", "path": path})
        else:
            # "add" on an existing property replaces it, so one op serves both cases.
            ops.append({"op": "add", "path": path, "value": str(value)})
    return ops


def _is_protected(client: Any, image_id: str) -> bool:
    try:
        return bool(_get_raw(client, image_id).get("protected"))
    except Exception:
        return False


def _iter_body(resp: requests.Response, fullname: str, image_id: str) -> Iterator[bytes]:
    try:
        for chunk in resp.iter_content(chunk_size=CHUNK_SIZE):
            if chunk:
                yield chunk
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        kind = "timed out" if _is_timeout(exc) else "was interrupted"
        raise FacadeError(
            f"{fullname}: Download of image {image_id} {kind}. Cause: {_one_line(exc)}"
        ) from exc


def _to_image(raw: Mapping[str, Any], region: str) -> Image:
    return Image(
        id=raw["id"],
        name=raw.get("name"),
        region=region,
        owner=raw.get("owner"),
        visibility=raw.get("visibility") or "private",
        checksum=raw.get("checksum"),
        size=raw.get("size") or 0,
        status=raw.get("status") or "",
        # A null property (kernel_id: null) is as good as absent; never turn it into "None".
        properties={k: v for k, v in raw.items() if is_user_property(k) and v is not None},
        os_hash_algo=raw.get("os_hash_algo"),
        os_hash_value=raw.get("os_hash_value"),
        disk_format=raw.get("disk_format"),
        container_format=raw.get("container_format"),
        min_ram=raw.get("min_ram") or 0,
        min_disk=raw.get("min_disk") or 0,
        protected=bool(raw.get("protected")),
        hidden=bool(raw.get("os_hidden")),
    )


class _ImportFailed(Exception):
    """A server-side import that did not end with an active image."""


def _task_error(client: Any, image_id: str) -> str:
    """": <message of the image's last failed import task>", or "" if none can be read."""
    try:
        _resp, body = client.http_client.get(f"/v2/images/{image_id}/tasks")
    except Exception:
        return ""
    messages = [
        " ".join(str(task.get("message") or "").split())
        for task in (body or {}).get("tasks", [])
        if task.get("status") == "failure"
    ]
    return f": {messages[-1]}" if messages and messages[-1] else ""


class _SourceFailure(Exception):
    """The image bytes could not be read (the destination was fine)."""

    def __init__(self, description: str, error: BaseException) -> None:
        self.error = error
        # A FacadeError (master download) already says where; other errors need the source.
        text = _one_line(error)
        super().__init__(
            text if isinstance(error, FacadeError) else f"reading {description} failed: {text}"
        )


class _ChunkReader:
    """File-like view of ``source.chunks()``: glanceclient only streams objects with read().

    Holds at most one chunk. An error raised by the source is kept in ``error``, because
    the HTTP stack reports it as a mere broken request.
    """

    def __init__(self, source: ImageSource) -> None:
        self._chunks = source.chunks()
        self._buffer = memoryview(b"")
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        if not self._buffer:
            try:
                self._buffer = memoryview(next(self._chunks, b""))
            except Exception as exc:
                self.error = exc
                raise
        if size is None or size < 0 or size >= len(self._buffer):
            size = len(self._buffer)
        # glanceclient reads 64 KiB at a time: a view avoids copying the rest of the chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(data)

    def close(self) -> None:
        self._chunks.close()  # type: ignore[attr-defined]  # a generator: ends the download


# -- error text -------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Every exception wrapped in ``exc`` (libraries wrap a socket error three times over)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, urllib3.exceptions.NewConnectionError):
            # Only its socket error is of interest: the class itself is a subclass of
            # ConnectTimeoutError even for "connection refused".
            todo.extend([current.__cause__, current.__context__])
            continue
        todo.extend([current.__cause__, current.__context__, *current.args])


def _is_transient(exc: BaseException) -> bool:
    """A failure the same request may not meet again: connection, timeout, 502/503/504."""
    for e in _chain(exc):
        if isinstance(e, FacadeError):
            return e.transient
        status = getattr(e, "code", None) or getattr(e, "http_status", None)
        if isinstance(status, int) and status in RETRIABLE_STATUSES:
            return True
        if isinstance(e, (ksa_exc.ConnectionError, requests.ConnectionError, ConnectionError)):
            return True
        if isinstance(e, (glance_exc.CommunicationError, glance_exc.InvalidEndpoint)):
            return True
    return _is_timeout(exc)


def _is_reset(exc: BaseException) -> bool:
    return _reset_cause(exc) is not None


def _reset_cause(exc: BaseException) -> str | None:
    """What the socket said when an established connection was lost, else None."""
    chain = list(_chain(exc))
    for kinds in ((ConnectionResetError, BrokenPipeError), (urllib3.exceptions.ProtocolError,)):
        found = next((e for e in chain if isinstance(e, kinds)), None)
        if found is not None:
            return _one_line(found)
    return None


# -- HTTP error answers -------------------------------------------------------------------
MAX_ERROR_BODY = 300  # characters of an error body kept in a message


def _robust_errors(http_client: Any) -> None:
    """Make ``http_client`` turn every error answer into glanceclient's exception for its
    status, with the status and the body in the message, whatever the body's shape.

    glanceclient reads a JSON error body as a dict of dicts and fails on anything else
    (a gateway's ``"busy"``, a list, invalid JSON): "'str' object has no attribute
    'get'" would be all the operator saw."""
    original = http_client._handle_response

    def handle_response(resp: requests.Response) -> Any:
        if not resp.ok:
            raise _http_error(resp)
        return original(resp)

    http_client._handle_response = handle_response


def _http_error(resp: requests.Response) -> glance_exc.HTTPException:
    cls = glance_exc._code_map.get(resp.status_code, glance_exc.HTTPException)
    status = f"{resp.status_code} {resp.reason or ''}".strip()
    body = _body_text(resp)
    return cls(details=f"{status}: {body}" if body else status)


def _body_text(resp: requests.Response) -> str:
    try:
        raw = resp.content or b""
    except Exception:  # noqa: BLE001 - the body could not be read: the status is enough
        return ""
    ctype = resp.headers.get("content-type", "")
    text = raw.decode("utf-8", "replace")
    if "json" in ctype:
        try:
            text = _json_text(json.loads(text))
        except ValueError:
            pass
    elif "html" in ctype:
        text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_BODY else text[:MAX_ERROR_BODY] + "..."


def _json_text(value: Any) -> str:
    """The messages of a JSON error body: ``{"message": ...}`` at any depth, else every
    string in it; anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        message = value.get("message")
        if isinstance(message, str):
            return message
        return " ".join(part for part in map(_json_text, value.values()) if part)
    if isinstance(value, list):
        return " ".join(part for part in map(_json_text, value) if part)
    return json.dumps(value)


def _is_timeout(exc: BaseException) -> bool:
    timeouts = (
        ksa_exc.ConnectTimeout,
        requests.Timeout,
        urllib3.exceptions.TimeoutError,
        socket.timeout,
        TimeoutError,
    )
    return any(
        isinstance(e, timeouts) and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in _chain(exc)
    )


def _connect_failure(exc: BaseException) -> str | None:
    """ "Unable to establish connection to URL: [Errno 111] Connection refused", or None."""
    chain = list(_chain(exc))
    failure = next((e for e in chain if isinstance(e, ksa_exc.ConnectFailure)), None)
    root = next((e for e in chain if isinstance(e, OSError) and e.errno is not None), None)
    if failure is None or root is None:
        return None
    return f"{str(failure).split(': ', 1)[0]}: {_one_line(root)}"
