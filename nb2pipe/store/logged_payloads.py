"""Payload logs KServe's logger wrote to a blob store, read back as nb2pipe's payload records.

Writing. With ``monitor`` and a blob ``logger_url`` (``s3://BUCKET/PREFIX``, ``gs://``,
``abfs://``), :func:`logger_spec` asks KServe's logger agent for blob objects: storage path
:data:`STORAGE_PATH`, format ``json``, credentials from the ServiceAccount
:data:`SERVICE_ACCOUNT` (manifests/overlays/payload-logging). Each request and each
response becomes ``<prefix>/<namespace>/<service>/<component>/payloads/<id>-request.json``
(``-response.json``): one JSON log record (``batchSize`` > 1: a JSON array of them, which may
mix requests and responses) with the HTTP body base64-encoded in ``bytes``
(KServe ``pkg/logger/types.go``, ``store.go``; docs/kserve-rules.md section 4).

Reading. :func:`read_logged_payloads` lists the objects under a URL or a local folder holding
the same layout (a synced bucket, a PVC mount), pairs request and response records by id and
yields what :func:`nb2pipe.store.payloads.read_payloads` yields for a local server: ``time``,
``model``, ``protocol``, ``columns``, ``instances``, ``predictions`` (and ``version`` when the
record carries the annotation :data:`VERSION_ANNOTATION`). Requests without a response
(KServe logs only status-200 answers), responses without a request and every record of a
reused id are skipped and counted as ``unpaired``; objects and records that are not a JSON log record
with a JSON body as ``undecodable``; a response whose body does not decode leaves
``predictions`` None. Bounded: the newest :data:`MAX_OBJECTS` objects (by modification
time) within :data:`TIME_LIMIT_S` seconds; the rest are counted as ``unread``.

Blob access goes through pyarrow.fs, imported when needed; S3 credentials and endpoint come
from the variables KServe's storage initializer sets (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` or ``S3_ENDPOINT`` + ``S3_USE_HTTPS``,
``AWS_DEFAULT_REGION``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from nb2pipe.deploy_checks import LOGGER_BLOB_SCHEMES as BLOB_SCHEMES
from nb2pipe.errors import Nb2PipeError
from nb2pipe.store.payloads import PREFIX, PayloadCounts, PayloadLogWarning

if TYPE_CHECKING:
    from nb2pipe.ir import DeploySettings

#: the ``storage.path`` nb2pipe asks for: the last folder above the objects
STORAGE_PATH = "payloads"
STORAGE_FORMAT = "json"
#: KServe's default logger ServiceAccount (``LoggerDefaultServiceAccountName``): its secrets
#: give the agent its blob credentials
SERVICE_ACCOUNT = "logger-sa"
#: required by KServe's webhook, defaulted to this by its pod injector and read by nothing else
STORAGE_KEY = "credentials"
#: the component nb2pipe logs (the predictor's logger is the one KServe configures)
COMPONENT = "predictor"
#: an InferenceService annotation KServe copies into each record when listed in
#: ``logger.metadataAnnotations``: the model version that answered
VERSION_ANNOTATION = "nb2pipe.io/model-version"
#: URL prefixes KServe's agent stores as blob objects (``GetStorageStrategy``; ``s3a`` is
#: sorted as S3 but has no storage provider, so the agent cannot start with it)
MAX_OBJECTS = 20_000
TIME_LIMIT_S = 300.0
#: a bigger object is not a log batch nb2pipe can hold in memory
MAX_OBJECT_BYTES = 64 * 1024 * 1024
_READERS = 8
_OBJECT_NAME = re.compile(r"^(?P<id>.+)-(?P<kind>request|response)\.(?P<extension>[A-Za-z0-9]+)$")
#: how far a local folder is searched for a first log object before it is not a logger sink
_PROBE_ENTRIES = 10_000


class LoggedPayloadWarning(PayloadLogWarning):
    """Objects of a KServe payload log were left out: not decodable, or past the limits."""


def is_blob_url(location: str | Path) -> bool:
    """Whether ``location`` names a blob store KServe's logger writes to (s3://, gs://, abfs://)."""
    return isinstance(location, str) and urlsplit(location).scheme.lower() in BLOB_SCHEMES


def is_logged_payloads(location: str | Path) -> bool:
    """A blob URL, or a local folder holding KServe logger objects (and no local payload log)."""
    if is_blob_url(location):
        return True
    folder = Path(location).expanduser()
    return folder.is_dir() and not any(folder.glob(f"{PREFIX}*.jsonl")) and has_logged_objects(folder)


def has_logged_objects(folder: Path) -> bool:
    """Whether a ``<id>-request.json`` / ``-response.json`` object lies under ``folder``
    (searched top-down, at most :data:`_PROBE_ENTRIES` entries)."""
    seen = 0
    for _, _, names in os.walk(folder):
        for name in names:
            if _OBJECT_NAME.match(name):
                return True
        seen += len(names) + 1
        if seen > _PROBE_ENTRIES:
            return False
    return False


def logged_payloads_url(logger_url: str, namespace: str, service: str, component: str = COMPONENT) -> str:
    """Where KServe writes ``service``'s objects for ``logger_url`` (``getObjectPrefix``)."""
    return "/".join([logger_url.rstrip("/"), namespace, service, component, STORAGE_PATH])


# -- writing: the InferenceService's logger ------------------------------------------------


def logger_spec(settings: DeploySettings, versioned: bool = False) -> Any:
    """The predictor's ``logger`` (a kserve ``V1beta1LoggerSpec``): every request and response,
    to ``settings.logger_url`` (the cluster's default sink when None); a blob URL gets the
    storage fields KServe's webhook requires (path, parameters and key). ``versioned``: the
    service carries :data:`VERSION_ANNOTATION`, copied into every record (KServe's injector
    passes an empty ``--metadata-annotations`` for a key the pod does not have)."""
    from kserve import V1beta1LoggerSpec
    from kserve.models.v1beta1_logger_storage_spec import V1beta1LoggerStorageSpec

    url = settings.logger_url
    copied = [VERSION_ANNOTATION] if versioned else None
    if not url or not is_blob_url(url):
        return V1beta1LoggerSpec(mode="all", url=url, metadata_annotations=copied)
    storage = V1beta1LoggerStorageSpec(
        path=STORAGE_PATH,
        parameters={"format": STORAGE_FORMAT},
        key=STORAGE_KEY,
        service_account_name=SERVICE_ACCOUNT,
    )
    return V1beta1LoggerSpec(mode="all", url=url, storage=storage, metadata_annotations=copied)


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One log record: a request or a response."""

    id: str
    kind: str
    time: datetime
    body: Any  # the parsed JSON body; None when it is not JSON
    service: str
    namespace: str
    component: str
    version: str | None


def read_logged_payloads(
    location: str | Path,
    *,
    namespace: str | None = None,
    service: str | None = None,
    component: str | None = None,
    counts: PayloadCounts | None = None,
    max_objects: int = MAX_OBJECTS,
    time_limit_s: float = TIME_LIMIT_S,
) -> Iterator[dict[str, Any]]:
    """Every answered request KServe logged under ``location`` (a blob URL or a local folder;
    all objects below it, of records of ``namespace``/``service``/``component`` when given),
    oldest first, as payload records (see the module's notes). What was left out is counted
    in ``counts`` and warned about once."""
    found = PayloadCounts()
    deadline = time.monotonic() + time_limit_s
    filesystem, root = _filesystem(str(location))
    objects = _list_objects(filesystem, root, str(location), time_limit_s)
    objects.sort(key=lambda info: info.mtime_ns or 0, reverse=True)  # the newest traffic first
    found.unread += max(0, len(objects) - max_objects)
    wanted = (namespace, service, component)
    by_id: dict[str, list[_Entry]] = {}
    for data in _read_objects(filesystem, objects[:max_objects], deadline, found):
        for entry in _entries(data, found):
            if all(want is None or want == have for want, have in zip(wanted, _where(entry), strict=True)):
                by_id.setdefault(entry.id, []).append(entry)
    records = []
    for entries in by_id.values():
        kinds = sorted(entry.kind for entry in entries)
        if kinds != ["request", "response"]:  # a missing half, or a reused id: whose answer is which is unknown
            found.unpaired += len(entries)
            continue
        request, response = sorted(entries, key=lambda entry: entry.kind)
        try:
            record = _payload_record(request, response)
        except RecursionError:  # tensor data nested deeper than Python recurses
            record = None
        if record is None:
            found.undecodable += 1
            continue
        records.append(record)
    if counts is not None:
        counts.unpaired += found.unpaired
        counts.undecodable += found.undecodable
        counts.unread += found.unread
    if found.undecodable or found.unread:
        warnings.warn(_left_out_message(str(location), found), LoggedPayloadWarning, stacklevel=2)
    records.sort(key=lambda record: record["time"])
    yield from records


def _where(entry: _Entry) -> tuple[str, str, str]:
    return entry.namespace, entry.service, entry.component


def _filesystem(location: str) -> tuple[Any, str]:
    """The pyarrow file system holding ``location``, and the path in it."""
    try:
        import pyarrow.fs as arrow_fs
    except ImportError as exc:
        raise Nb2PipeError("reading KServe's payload logs needs pyarrow: pip install pyarrow") from exc
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    try:
        if scheme == "s3":
            return _s3(arrow_fs), f"{parts.netloc}{parts.path}".rstrip("/")
        if scheme == "gs":
            return arrow_fs.GcsFileSystem(), f"{parts.netloc}{parts.path}".rstrip("/")
        if scheme == "abfs":  # abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX
            filesystem, path = arrow_fs.FileSystem.from_uri(location)
            return filesystem, path.rstrip("/")
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise Nb2PipeError(f"cannot open {location}: {_first_line(exc)}") from exc
    if scheme == "file":
        return arrow_fs.LocalFileSystem(), parts.path
    if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive
        raise Nb2PipeError(f"{location}: payload logs are read from s3://, gs://, abfs:// or a local folder")
    return arrow_fs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def _s3(arrow_fs: Any) -> Any:
    """An S3 file system configured as KServe's storage initializer configures its client."""
    options: dict[str, Any] = {"connect_timeout": 10, "request_timeout": 60}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        options.update(endpoint_override=parts.netloc or parts.path, scheme=parts.scheme or "https")
    elif os.environ.get("S3_ENDPOINT"):
        https = os.environ.get("S3_USE_HTTPS", "1") != "0"
        options.update(endpoint_override=os.environ["S3_ENDPOINT"], scheme="https" if https else "http")
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if region or "endpoint_override" in options:
        # an S3-compatible store (MinIO) has no region for pyarrow to look up
        options["region"] = region or "us-east-1"
    return arrow_fs.S3FileSystem(**options)


def _list_objects(filesystem: Any, root: str, location: str, time_limit_s: float) -> list[Any]:
    """The log objects under ``root``; none when it does not exist (nothing logged yet). The
    listing runs in a daemon thread, given up after ``time_limit_s``."""
    from pyarrow.fs import FileSelector, FileType

    listed: list[Any] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            listed.extend(filesystem.get_file_info(FileSelector(root, recursive=True)))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name="nb2pipe-list-payload-log", daemon=True)
    thread.start()
    thread.join(time_limit_s)
    if thread.is_alive():
        raise Nb2PipeError(
            f"listing {location} took more than {time_limit_s:g} s: give the prefix of one service, "
            f"LOGGER_URL/NAMESPACE/SERVICE/{COMPONENT}/{STORAGE_PATH}"
        )
    if failed:
        raise Nb2PipeError(f"cannot list {location}: {_first_line(failed[0])}") from failed[0]
    return [info for info in listed if info.type == FileType.File and _OBJECT_NAME.match(info.base_name)]


def _read_objects(filesystem: Any, objects: list[Any], deadline: float, counts: PayloadCounts) -> Iterator[bytes]:
    """The JSON objects' bytes, read a few at a time until ``deadline``; objects of another
    format, too big or unreadable are counted as undecodable, those left at the deadline as unread."""
    readable = []
    for info in objects:
        match = _OBJECT_NAME.match(info.base_name)
        if match is None or match["extension"] != STORAGE_FORMAT or (info.size or 0) > MAX_OBJECT_BYTES:
            counts.undecodable += 1
        else:
            readable.append(info.path)
    pool = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="nb2pipe-read-payload-log")
    try:
        pending = {pool.submit(_read_object, filesystem, path) for path in readable}
        while pending:
            done, pending = wait(pending, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
            if not done:
                counts.unread += len(pending)
                return
            for future in done:
                data = future.result()
                if data is None:
                    counts.undecodable += 1
                else:
                    yield data
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _read_object(filesystem: Any, path: str) -> bytes | None:
    try:
        with filesystem.open_input_stream(path) as stream:
            return bytes(stream.read())
    except OSError:  # gone since listed, or not readable: counted, like a broken object
        return None


def _entries(data: bytes, counts: PayloadCounts) -> Iterator[_Entry]:
    """The log records of one object (a record, or an array of them for batchSize > 1)."""
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        counts.undecodable += 1
        return
    for item in parsed if isinstance(parsed, list) else [parsed]:
        entry = _entry(item)
        if entry is None:
            counts.undecodable += 1
        else:
            yield entry


def _entry(item: Any) -> _Entry | None:
    """A Go ``LogRequest`` as JSON -> an entry; None when it is not one."""
    if not isinstance(item, dict):
        return None
    request_id, request_type = item.get("id"), item.get("reqType")
    if not isinstance(request_id, str) or not request_id or not isinstance(request_type, str):
        return None
    kind = request_type.rsplit(".", 1)[-1]  # org.kubeflow.serving.inference.request / .response
    if kind not in ("request", "response") or _is_explanation(item.get("url")):
        return None
    try:
        occurred = datetime.fromisoformat(str(item.get("occurrenceTime")))
        body_bytes = base64.b64decode(item.get("bytes") or "", validate=True)
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        return None
    try:
        body = json.loads(body_bytes) if body_bytes else None
    except (ValueError, RecursionError):
        body = None
    annotations = item.get("annotations")
    version = annotations.get(VERSION_ANNOTATION) if isinstance(annotations, dict) else None
    return _Entry(
        id=request_id,
        kind=kind,
        time=occurred if occurred.tzinfo else occurred.replace(tzinfo=UTC),
        body=body,
        service=str(item.get("inferenceService", "")),
        namespace=str(item.get("namespace", "")),
        component=str(item.get("component", "")),
        version=str(version) if version is not None else None,
    )


def _is_explanation(url: Any) -> bool:
    """Go marshals the request's ``*url.URL`` as its struct (``{"Path": ...}``)."""
    path = url.get("Path") if isinstance(url, dict) else url
    return isinstance(path, str) and path.endswith(":explain")


def _payload_record(request: _Entry, response: _Entry) -> dict[str, Any] | None:
    """A pair as the record a local server logs; None when the request's body is no inference request."""
    decoded = _request_rows(request.body)
    if decoded is None:
        return None
    protocol, columns, rows = decoded
    record: dict[str, Any] = {
        "time": request.time.astimezone(UTC).isoformat(timespec="milliseconds"),
        "model": request.service,
        "protocol": protocol,
        "columns": columns,
        "instances": rows,
        "predictions": _predictions(response.body),
        "id": request.id,
    }
    if request.version is not None:
        record["version"] = request.version
    return record


def _request_rows(body: Any) -> tuple[str, list[str] | None, list[Any]] | None:
    """(protocol, column names or None, rows) of a v1 or v2 (Open Inference Protocol) body."""
    if not isinstance(body, dict):
        return None
    inputs = body.get("inputs")
    if isinstance(inputs, list) and inputs and all(_is_tensor(tensor) for tensor in inputs):
        return _tensor_rows(inputs)
    rows = body.get("instances", inputs)
    return ("v1", None, rows) if isinstance(rows, list) and rows else None


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and {"name", "shape", "data"} <= value.keys() and isinstance(value["shape"], list)


def _tensor_rows(inputs: list[dict[str, Any]]) -> tuple[str, list[str] | None, list[Any]] | None:
    """As nb2pipe's server reads v2 inputs: one ``[N, F]`` input is the table; inputs of shape
    ``[N]`` or ``[N, 1]`` are its columns."""
    if len(inputs) == 1 and len(inputs[0]["shape"]) == 2:
        shape, values = inputs[0]["shape"], _flat(inputs[0]["data"])
        width = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else 0
        if not width or len(values) % width:
            return None
        return "v2", None, [values[start : start + width] for start in range(0, len(values), width)]
    columns = [_flat(tensor["data"]) for tensor in inputs]
    if any(len(tensor["shape"]) not in (1, 2) for tensor in inputs) or len({len(column) for column in columns}) != 1:
        return None
    names = [str(tensor["name"]) for tensor in inputs]
    return "v2", names, [list(row) for row in zip(*columns, strict=True)]


def _predictions(body: Any) -> list[Any] | None:
    """A v1 ``predictions`` list, or a v2 response's first output, one item per row."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("predictions"), list):
        return list(body["predictions"])
    outputs = body.get("outputs")
    if not isinstance(outputs, list) or not outputs or not _is_tensor(outputs[0]):
        return None
    shape, values = outputs[0]["shape"], _flat(outputs[0]["data"])
    width = shape[1] if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1 else 0
    if width and len(values) % width == 0:
        return [values[start : start + width] for start in range(0, len(values), width)]
    return values


def _flat(data: Any) -> list[Any]:
    """Tensor data, row-major, whether sent flat or nested."""
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    for item in data:
        flat.extend(_flat(item) if isinstance(item, list) else [item])
    return flat


def _left_out_message(location: str, counts: PayloadCounts) -> str:
    parts = []
    if counts.undecodable:
        parts.append(f"{counts.undecodable} objects or records that are not JSON log records of an inference request")
    if counts.unread:
        parts.append(f"{counts.unread} objects past the object-count or time limit (the newest were read)")
    if counts.unpaired:
        parts.append(f"{counts.unpaired} requests or responses without their pair")
    return f"KServe payload log {location}: left out {'; '.join(parts)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
