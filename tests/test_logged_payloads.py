"""KServe's blob payload logger, both ends: the InferenceService's ``logger`` nb2pipe writes
for an s3:// / gs:// / abfs:// URL (checked against the CRD and the webhook's rules), and the
reader of the objects KServe's agent writes, built here exactly as its Go code marshals them
(``pkg/logger/types.go`` LogRequest, ``marshaller_json.go``, ``store.go`` object keys), read
from a local folder with the same layout (what ``aws s3 sync`` of the bucket leaves)."""

from __future__ import annotations

import base64
import json
import os
import threading
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import pytest

from nb2pipe.deploy_checks import logger_problems
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.deploy import admitted, check_request
from nb2pipe.lifecycle.inference_service import ServedModel, inference_service
from nb2pipe.store.logged_payloads import (
    SERVICE_ACCOUNT,
    STORAGE_PATH,
    VERSION_ANNOTATION,
    LoggedPayloadWarning,
    is_logged_payloads,
    logged_payloads_url,
    read_logged_payloads,
)
from nb2pipe.store.payloads import PayloadCounts
from nb2pipe.store.tables import TableError, load_table, payload_table
from tests.support.crd_schema import validate_resource

REQUEST = "org.kubeflow.serving.inference.request"  # pkg/logger/worker.go CEInferenceRequest
RESPONSE = "org.kubeflow.serving.inference.response"
LOGGER_URL = "s3://logger-output/logs"


# --- objects as KServe's agent writes them -------------------------------------------------


def go_url(path: str) -> dict[str, Any]:
    """A Go ``*url.URL`` through encoding/json: it has no JSON or text marshaller, so its struct."""
    return {
        "Scheme": "http",
        "Opaque": "",
        "User": None,
        "Host": "127.0.0.1:8080",
        "Path": path,
        "RawPath": "",
        "OmitHost": False,
        "ForceQuery": False,
        "RawQuery": "",
        "Fragment": "",
        "RawFragment": "",
    }


def log_request(
    request_id: str,
    request_type: str,
    body: Any,
    occurred: str,
    *,
    service: str = "iris",
    namespace: str = "models",
    path: str = "/v1/models/iris:predict",
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A LogRequest in its Go field order, ``omitempty`` fields left out when empty; ``bytes``
    (a Go ``*[]byte``) base64-encoded; ``occurrenceTime`` RFC 3339 with nanoseconds."""
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    record: dict[str, Any] = {
        "url": go_url(path),
        "bytes": base64.b64encode(data).decode(),
        "contentType": "application/json",
        "reqType": request_type,
        "id": request_id,
        "sourceUri": go_url(f"http://{service}-predictor.{namespace}/"),
        "inferenceService": service,
        "namespace": namespace,
        "component": "predictor",
        "endpoint": "default",
        "metadata": {"Content-Type": ["application/json"]},
    }
    if annotations:
        record["annotations"] = dict(annotations)
    record["occurrenceTime"] = occurred
    return record


def write_object(
    root: Path, records: list[dict[str, Any]], *, service: str = "iris", namespace: str = "models"
) -> Path:
    """One blob object: the JSON marshaller's output (one record: an object; more: an array),
    keyed by the batch's first record (``BlobStore.getObjectKey``)."""
    first = records[0]
    folder = root / "logs" / namespace / service / "predictor" / STORAGE_PATH
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{first['id']}-{first['reqType'].rsplit('.', 1)[-1]}.json"
    content = records[0] if len(records) == 1 else records
    path.write_text(json.dumps(content, separators=(",", ":")))
    return path


def write_pair(
    root: Path, request_id: str, rows: list[Any], predictions: list[Any], second: int, **options: Any
) -> None:
    write_object(
        root, [log_request(request_id, REQUEST, {"instances": rows}, at(second), **options)], **_where(options)
    )
    reply = log_request(request_id, RESPONSE, {"predictions": predictions}, at(second, 0.004), **options)
    write_object(root, [reply], **_where(options))


def _where(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: options[key] for key in ("service", "namespace") if key in options}


def at(second: int, later: float = 0.0) -> str:
    nanoseconds = int(later * 1e9) + 123456789
    return f"2026-12-05T03:12:{second:02d}.{nanoseconds:09d}Z"


def objects_folder(root: Path, service: str = "iris", namespace: str = "models") -> Path:
    return root / "logs" / namespace / service / "predictor" / STORAGE_PATH


def read_all(location: Path | str, **options: Any) -> tuple[list[dict[str, Any]], PayloadCounts]:
    counts = PayloadCounts()
    return list(read_logged_payloads(location, counts=counts, **options)), counts


# --- reading -------------------------------------------------------------------------------


def test_single_v1_records_pair_into_payload_records_oldest_first(tmp_path: Path) -> None:
    write_pair(tmp_path, "b", [[5.9, 3.0, 5.1, 1.8]], [2], second=9)
    write_pair(tmp_path, "a", [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]], [0, 1], second=8)

    records, counts = read_all(objects_folder(tmp_path))

    assert records == [
        {
            "time": "2026-12-05T03:12:08.123+00:00",
            "model": "iris",
            "protocol": "v1",
            "columns": None,
            "instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]],
            "predictions": [0, 1],
            "id": "a",
        },
        {
            "time": "2026-12-05T03:12:09.123+00:00",
            "model": "iris",
            "protocol": "v1",
            "columns": None,
            "instances": [[5.9, 3.0, 5.1, 1.8]],
            "predictions": [2],
            "id": "b",
        },
    ]
    assert counts == PayloadCounts()


def test_batched_objects_are_arrays_that_mix_requests_and_responses(tmp_path: Path) -> None:
    """batchSize 3: records go to a batch in arrival order, so a request and its response can
    land in different objects; each object is named after its first record."""
    requests = [log_request(f"r{i}", REQUEST, {"instances": [[i, i + 1]]}, at(i)) for i in range(3)]
    responses = [log_request(f"r{i}", RESPONSE, {"predictions": [i * 10]}, at(i, 0.5)) for i in range(3)]
    first = write_object(tmp_path, [requests[0], responses[0], requests[1]])
    second = write_object(tmp_path, [requests[2], responses[1], responses[2]])
    assert (first.name, second.name) == ("r0-request.json", "r2-request.json")
    assert isinstance(json.loads(first.read_text()), list)

    records, counts = read_all(objects_folder(tmp_path))

    assert [(r["id"], r["instances"], r["predictions"]) for r in records] == [
        ("r0", [[0, 1]], [0]),
        ("r1", [[1, 2]], [10]),
        ("r2", [[2, 3]], [20]),
    ]
    assert counts == PayloadCounts()


def test_v2_bodies_give_columns_or_a_matrix(tmp_path: Path) -> None:
    by_column = {
        "inputs": [
            {"name": "sepal_length", "shape": [2], "datatype": "FP64", "data": [5.1, 6.2]},
            {"name": "sepal_width", "shape": [2, 1], "datatype": "FP64", "data": [[3.5], [2.9]]},
        ]
    }
    matrix = {"id": "x", "inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    answer = {
        "model_name": "iris",
        "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64", "data": [0, 1]}],
    }
    path = "/v2/models/iris/infer"
    for request_id, body, second in (("cols", by_column, 1), ("matrix", matrix, 2)):
        write_object(tmp_path, [log_request(request_id, REQUEST, body, at(second), path=path)])
        write_object(tmp_path, [log_request(request_id, RESPONSE, answer, at(second, 0.1), path=path)])

    records, counts = read_all(objects_folder(tmp_path))

    assert [(r["protocol"], r["columns"], r["instances"], r["predictions"]) for r in records] == [
        ("v2", ["sepal_length", "sepal_width"], [[5.1, 3.5], [6.2, 2.9]], [0, 1]),
        ("v2", None, [[1, 2], [3, 4]], [0, 1]),
    ]
    assert counts == PayloadCounts()


def test_broken_and_unpaired_objects_are_skipped_and_counted(tmp_path: Path) -> None:
    write_pair(tmp_path, "good", [[1, 2]], [0], second=1)
    folder = objects_folder(tmp_path)
    (folder / "torn-request.json").write_text('{"id":"torn","reqType":')  # cut short
    bad_base64 = log_request("b64", REQUEST, {"instances": [[1, 2]]}, at(2))
    bad_base64["bytes"] = "not base64!"
    write_object(tmp_path, [bad_base64, log_request("b64", RESPONSE, {"predictions": [1]}, at(2, 0.1))])
    # a request KServe answered with 400: it logs the request, never the response
    write_object(tmp_path, [log_request("rejected", REQUEST, {"instances": "oops"}, at(3))])
    write_object(tmp_path, [log_request("orphan", RESPONSE, {"predictions": [1]}, at(4))])
    text_body = [log_request("text", REQUEST, b"sepal=5.1", at(5)), log_request("text", RESPONSE, b"ok", at(5, 0.1))]
    write_object(tmp_path, text_body)
    (folder / "csv-request.csv").write_text("url,bytes\n")  # a logger configured with format: csv
    (folder / "notes.txt").write_text("not a log object")  # not named like one: not listed

    with pytest.warns(LoggedPayloadWarning, match="left out 4 objects or records") as caught:
        records, counts = read_all(folder)

    assert [record["id"] for record in records] == ["good"]
    # undecodable: the torn object, the bad-base64 request, the csv object, the text request body
    # unpaired: the rejected request, the orphan response, the bad-base64 request's response
    assert counts == PayloadCounts(undecodable=4, unpaired=3)
    assert len(caught) == 1 and str(folder) in str(caught[0].message)


def test_a_response_body_that_does_not_decode_leaves_predictions_empty(tmp_path: Path) -> None:
    write_object(tmp_path, [log_request("a", REQUEST, {"instances": [[1.0]]}, at(1))])
    write_object(tmp_path, [log_request("a", RESPONSE, b"\x00\x01", at(1, 0.1))])
    records, counts = read_all(objects_folder(tmp_path))
    assert [(r["instances"], r["predictions"]) for r in records] == [([[1.0]], None)]
    assert counts == PayloadCounts()


def test_a_reused_request_id_is_not_paired_at_random(tmp_path: Path) -> None:
    """A client's own Ce-Id header becomes the id; sent twice, which response is whose is unknown
    (with batchSize 1 the second object even replaces the first: same key)."""
    write_pair(tmp_path, "good", [[0]], [0], second=0)
    batch = [
        log_request("same", REQUEST, {"instances": [[1]]}, at(1)),
        log_request("same", RESPONSE, {"predictions": [0]}, at(1, 0.1)),
        log_request("same", REQUEST, {"instances": [[2]]}, at(2)),
    ]
    write_object(tmp_path, batch)
    records, counts = read_all(objects_folder(tmp_path))
    assert [record["id"] for record in records] == ["good"]
    assert counts == PayloadCounts(unpaired=3)


def test_reading_above_the_services_keeps_the_one_asked_for(tmp_path: Path) -> None:
    write_pair(tmp_path, "iris-1", [[1, 2]], [0], second=1)
    write_pair(tmp_path, "wine-1", [[3, 4, 5]], [1], second=2, service="wine")
    write_pair(tmp_path, "iris-2", [[6, 7]], [1], second=3, namespace="staging")

    everything, _ = read_all(tmp_path / "logs")
    iris, _ = read_all(tmp_path / "logs", namespace="models", service="iris")

    assert [record["id"] for record in everything] == ["iris-1", "wine-1", "iris-2"]
    assert [record["id"] for record in iris] == ["iris-1"]


def test_past_the_object_limit_the_newest_objects_are_read(tmp_path: Path) -> None:
    for index in range(3):
        write_pair(tmp_path, f"r{index}", [[index]], [index], second=index)
    folder = objects_folder(tmp_path)
    for index in range(3):
        for kind in ("request", "response"):
            stamp = 1_700_000_000 + 100 * index
            os.utime(folder / f"r{index}-{kind}.json", (stamp, stamp))

    with pytest.warns(LoggedPayloadWarning, match="2 objects past the object-count or time limit"):
        records, counts = read_all(folder, max_objects=4)

    assert [record["id"] for record in records] == ["r1", "r2"]
    assert counts == PayloadCounts(unread=2)


def test_a_prefix_with_nothing_logged_yet_holds_no_records(tmp_path: Path) -> None:
    records, counts = read_all(tmp_path / "not-yet")
    assert records == [] and counts == PayloadCounts()


def test_a_store_that_cannot_be_listed_is_one_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with pytest.raises(Nb2PipeError, match=r"^cannot list s3://logger-output/logs: .*127\.0\.0\.1"):
        read_all(LOGGER_URL)


class FakeS3:
    """The two S3 calls a reader makes, on 127.0.0.1: ListObjectsV2 (path-style, as a custom
    endpoint is addressed) and GetObject/HeadObject; ``objects``: "bucket/key" -> (data, mtime)."""

    def __init__(self, objects: dict[str, tuple[bytes, float]]) -> None:
        self.objects = objects
        self.requests: list[str] = []

    def __enter__(self) -> FakeS3:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=lambda: self._server.serve_forever(poll_interval=0.05), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _listing(self, bucket: str, prefix: str) -> bytes:
        keys = sorted(name.partition("/")[2] for name in self.objects if name.startswith(f"{bucket}/"))
        contents = "".join(
            f"<Contents><Key>{escape(key)}</Key><LastModified>{self._iso(bucket, key)}</LastModified>"
            f'<Size>{len(self.objects[f"{bucket}/{key}"][0])}</Size><ETag>"x"</ETag></Contents>'
            for key in keys
            if key.startswith(prefix)
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><IsTruncated>false</IsTruncated>{contents}"
            "</ListBucketResult>"
        ).encode()

    def _iso(self, bucket: str, key: str) -> str:
        return datetime.fromtimestamp(self.objects[f"{bucket}/{key}"][1], UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                store.requests.append(f"{self.command} {self.path}")
                parts = urlsplit(self.path)
                bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
                query = parse_qs(parts.query)
                if not key and "list-type" in query:
                    self._reply(200, store._listing(bucket, query.get("prefix", [""])[0]), "application/xml")
                elif f"{bucket}/{key}" in store.objects:
                    data, mtime = store.objects[f"{bucket}/{key}"]
                    self._reply(200, data, "application/json", formatdate(mtime, usegmt=True))
                else:
                    self._reply(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")

            do_HEAD = do_GET

            def _reply(self, status: int, body: bytes, content_type: str, modified: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if modified:
                    self.send_header("Last-Modified", modified)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        return Handler


@pytest.mark.parametrize("endpoint_variable", ["AWS_ENDPOINT_URL", "S3_ENDPOINT"])
def test_objects_are_read_from_an_s3_compatible_store(monkeypatch: pytest.MonkeyPatch, endpoint_variable: str) -> None:
    prefix = "logger-output/logs/models/iris/predictor/payloads"
    objects = {
        f"{prefix}/a-request.json": log_request("a", REQUEST, {"instances": [[1.5, 2.5]]}, at(1)),
        f"{prefix}/a-response.json": log_request("a", RESPONSE, {"predictions": [1]}, at(1, 0.1)),
    }
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "S3_ENDPOINT", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    stored = {key: (json.dumps(record).encode(), 1_700_000_000.0) for key, record in objects.items()}
    with FakeS3(stored) as s3:
        if endpoint_variable == "S3_ENDPOINT":  # as KServe sets it: no scheme, S3_USE_HTTPS says which
            monkeypatch.setenv("S3_ENDPOINT", s3.endpoint.removeprefix("http://"))
            monkeypatch.setenv("S3_USE_HTTPS", "0")
        else:
            monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
        records, counts = read_all(logged_payloads_url(LOGGER_URL, "models", "iris"))
        nothing_yet, _ = read_all(logged_payloads_url(LOGGER_URL, "models", "wine"))

    assert [(r["id"], r["instances"], r["predictions"]) for r in records] == [("a", [[1.5, 2.5]], [1])]
    assert counts == PayloadCounts() and nothing_yet == []
    # path-style addressing (bucket in the path), as MinIO serves it
    assert any(line.startswith("GET /logger-output?list-type=2") for line in s3.requests)
    assert f"GET /{prefix}/a-request.json" in s3.requests


def test_s3_endpoint_and_region_come_from_kserves_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from nb2pipe.store.logged_payloads import _filesystem

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("S3_ENDPOINT", "minio-service.kubeflow:9000")
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    filesystem, root = _filesystem(logged_payloads_url(LOGGER_URL, "models", "iris"))
    options = filesystem.__reduce__()[1][0]
    assert root == "logger-output/logs/models/iris/predictor/payloads"
    assert (options["endpoint_override"], options["scheme"], options["region"]) == (
        "minio-service.kubeflow:9000",
        "http",
        "us-east-1",
    )


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [
        (
            "gs://bucket/logs/models/iris/predictor/payloads",
            "GcsFileSystem",
            "bucket/logs/models/iris/predictor/payloads",
        ),
        ("abfs://logs@account.dfs.core.windows.net/p/models/", "AzureFileSystem", "logs/p/models"),
    ],
)
def test_gcs_and_azure_urls_open_their_file_systems(url: str, kind: str, path: str) -> None:
    from nb2pipe.store.logged_payloads import _filesystem

    filesystem, root = _filesystem(url)
    assert (type(filesystem).__name__, root) == (kind, path)


def test_what_counts_as_kserves_payload_log(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "payloads-20261205.jsonl").write_text("")
    write_pair(tmp_path, "a", [[1]], [0], second=1)
    assert is_logged_payloads("s3://bucket/prefix") and is_logged_payloads("gs://bucket/prefix")
    assert is_logged_payloads(tmp_path / "logs")
    assert not is_logged_payloads(local) and not is_logged_payloads(tmp_path / "missing")


# --- tables, drift and retraining read them unchanged --------------------------------------


def test_tables_read_a_synced_bucket_like_a_payload_log(tmp_path: Path) -> None:
    write_pair(tmp_path, "a", [[5.1, 3.5], [4.9, 3.0]], [0, 0], second=1)
    write_pair(tmp_path, "b", [{"sepal_length": 6.3, "sepal_width": 3.3}], [2], second=2)

    counts = PayloadCounts()
    table = load_table(tmp_path / "logs", counts)

    expected = pd.DataFrame({"f0": [5.1, 4.9], "f1": [3.5, 3.0]})
    pd.testing.assert_frame_equal(table.iloc[:2][["f0", "f1"]], expected)
    assert table.iloc[2][["sepal_length", "sepal_width"]].tolist() == [6.3, 3.3]
    assert counts == PayloadCounts()


def test_payload_table_keeps_the_version_asked_for_when_records_carry_it(tmp_path: Path) -> None:
    for index, version in enumerate(("1", "2", "2")):
        options = {"annotations": {VERSION_ANNOTATION: version}}
        write_pair(tmp_path, f"r{index}", [[index]], [0], second=index, **options)
    write_pair(tmp_path, "unversioned", [[9]], [0], second=5)  # no annotation: kept, whichever version
    table = payload_table(objects_folder(tmp_path), version="2")
    assert table is not None and table["f0"].tolist() == [1, 2, 9]


def test_a_log_with_only_failed_requests_is_one_clear_error(tmp_path: Path) -> None:
    write_object(tmp_path, [log_request("a", REQUEST, {"instances": [[1]]}, at(1))])
    with pytest.raises(TableError, match=r"holds no requests yet other than 1 without their pair"):
        load_table(tmp_path / "logs")


@pytest.mark.slow  # alibi-detect brings TensorFlow
def test_drift_cli_tests_the_traffic_kserve_logged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nb2pipe.cli import main

    generator = np.random.default_rng(0)
    reference = pd.DataFrame({"width": generator.normal(size=500), "height": generator.normal(size=500)})
    reference.to_csv(tmp_path / "reference.csv", index=False)
    shifted = np.column_stack([generator.normal(2.0, size=400), generator.normal(size=400)])
    for index, start in enumerate(range(0, 400, 50)):  # batches of 50 rows, sent as plain rows
        write_pair(tmp_path, f"r{index}", shifted[start : start + 50].tolist(), [0] * 50, second=index)

    argv = ["drift", "--reference", str(tmp_path / "reference.csv"), "--current", str(tmp_path / "logs"), "--json"]
    assert main(argv) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["is_drift"] is True
    drifted = {feature["name"] for feature in verdict["features"] if feature["is_drift"]}
    assert drifted == {"width"}  # the logged rows got the reference's column names


# --- writing: the InferenceService's logger ------------------------------------------------


def served() -> ServedModel:
    return ServedModel("models:/iris/3", "sklearn", "s3://models/iris/3", "3")


def test_an_s3_logger_url_asks_kserve_for_blob_objects_and_is_crd_valid() -> None:
    settings = DeploySettings(monitor=True, logger_url=LOGGER_URL)
    check_request("iris", settings)
    resource = inference_service("iris", served(), settings)
    validate_resource(resource)
    behaviour = admitted(resource)  # nothing KServe's webhook or reconcilers would refuse or ignore
    assert any(line.startswith("payload logger:") and LOGGER_URL in line for line in behaviour)
    assert resource["spec"]["predictor"]["logger"] == {
        "mode": "all",
        "url": LOGGER_URL,
        # each record carries the version that answered: the drift gate keeps the champion's
        "metadataAnnotations": [VERSION_ANNOTATION],
        # KServe's webhook refuses a storage without path, parameters and key (validateLogger)
        "storage": {
            "path": STORAGE_PATH,
            "parameters": {"format": "json"},
            "key": "credentials",
            "serviceAccountName": SERVICE_ACCOUNT,
        },
    }
    assert resource["metadata"]["annotations"][VERSION_ANNOTATION] == "3"
    unversioned = inference_service("iris", ServedModel("/models/iris", "sklearn", "s3://models/iris"), settings)
    assert "metadataAnnotations" not in unversioned["spec"]["predictor"]["logger"]  # set both or neither
    assert VERSION_ANNOTATION not in unversioned["metadata"]["annotations"]


@pytest.mark.parametrize("url", [None, "http://broker.knative-eventing/default"])
def test_an_http_or_default_sink_keeps_the_cloudevents_logger(url: str | None) -> None:
    resource = inference_service("iris", served(), DeploySettings(monitor=True, logger_url=url))
    validate_resource(resource)
    expected = {"mode": "all", "url": url} if url else {"mode": "all"}
    # the CloudEvents carry the version too (their "annotations" extension)
    assert resource["spec"]["predictor"]["logger"] == {**expected, "metadataAnnotations": [VERSION_ANNOTATION]}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("s3a://bucket/logs", "no s3a storage provider"),
        ("pvc://payloads/logs", "no pvc:// or file:// sink"),
        ("S3://bucket/logs", "(lowercase)"),
        ("s3:///logs", "names no bucket"),
    ],
)
def test_urls_kserves_logger_would_lose_payloads_to_are_refused(url: str, problem: str) -> None:
    settings = DeploySettings(monitor=True, logger_url=url)
    assert len(logger_problems(settings)) == 1 and problem in logger_problems(settings)[0]
    with pytest.raises(Nb2PipeError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        check_request("iris", settings)


def test_a_notebook_whose_logger_would_lose_payloads_does_not_compile() -> None:
    from nb2pipe.compiler import compile_source
    from nb2pipe.errors import CompileError
    from tests.support.nbtools import code, notebook, notebook_text

    nb = notebook(
        code("from sklearn.linear_model import LogisticRegression\nX, y = [[0.0], [1.0]], [0, 1]", "step:load"),
        code("model = LogisticRegression().fit(X, y)", "step:train", "register:iris", "deploy:iris", "monitor"),
        metadata={"nb2pipe": {"deploy": {"logger_url": "pvc://payloads/logs"}}},
    )
    with pytest.raises(CompileError) as refused:
        compile_source(notebook_text(nb), "iris.ipynb")
    assert any("no pvc:// or file:// sink" in d.message for d in refused.value.diagnostics)


def test_sound_logger_settings_have_no_problems() -> None:
    for url in (None, LOGGER_URL, "gs://bucket/p", "abfs://logs@account.dfs.core.windows.net/p", "https://sink/"):
        assert logger_problems(DeploySettings(monitor=True, logger_url=url)) == []
    assert logger_problems(DeploySettings(monitor=False, logger_url="pvc://x")) == []  # no logger written


def test_the_reader_finds_what_the_writer_configures(tmp_path: Path) -> None:
    """The prefix KServe writes to for nb2pipe's logger is where the reader is pointed."""
    assert logged_payloads_url(LOGGER_URL + "/", "models", "iris") == (
        f"{LOGGER_URL}/models/iris/predictor/{STORAGE_PATH}"
    )
    write_pair(tmp_path, "a", [[1]], [0], second=1)
    local_copy = logged_payloads_url(str(tmp_path / "logs"), "models", "iris")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [record["id"] for record in read_logged_payloads(local_copy)] == ["a"]


# --- the monitoring pipeline's gate and nb2pipe retrain take the URL -----------------------


def test_retrain_passes_a_blob_prefix_to_the_pipeline_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from nb2pipe.monitoring import retrain

    given: dict[str, Any] = {}

    class RecordingRun:
        parallel = None

        def __init__(self, **options: Any) -> None:
            given.update(options)

        def start(self) -> Any:
            return SimpleNamespace(steps=[], run_dir=tmp_path, status="succeeded")

    monkeypatch.setattr(retrain, "LocalRun", RecordingRun)
    prefix = logged_payloads_url(LOGGER_URL, "models", "breast-cancer")
    notebook = Path(__file__).resolve().parents[1] / "examples" / "monitoring.ipynb"
    retrain.retrain_notebook(notebook, payloads=prefix, workdir=tmp_path)
    assert given["parameters"]["payloads"] == prefix
    with pytest.raises(Nb2PipeError, match=r"no such folder; .* or the s3://, gs:// or abfs:// prefix"):
        retrain.retrain_notebook(notebook, payloads=str(tmp_path / "missing"), workdir=tmp_path)


@pytest.mark.slow  # alibi-detect brings TensorFlow
def test_the_gate_tests_the_traffic_kserve_logged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """monitor_step with the deploy:'s blob ``logger_url`` and ``namespace`` in its config and no
    payloads parameter reads the objects KServe writes for the service: drifted traffic -> retrain."""
    from types import SimpleNamespace

    from nb2pipe.monitoring import steps
    from nb2pipe.store import registry

    generator = np.random.default_rng(1)
    reference = pd.DataFrame({"width": generator.normal(size=300), "height": generator.normal(size=300)})
    for index in range(6):
        rows = np.column_stack([generator.normal(3.0, size=20), generator.normal(size=20)]).tolist()
        write_pair(tmp_path, f"r{index}", rows, [0] * 20, second=index, annotations={VERSION_ANNOTATION: "4"})
    monkeypatch.setattr(registry, "use_tracking", lambda *args, **kwargs: "file:///nowhere")
    monkeypatch.setattr(registry, "download_reference", lambda *args, **kwargs: tmp_path)
    monkeypatch.setattr(steps, "champion_version", lambda name: "4")
    monkeypatch.setattr(steps, "load_reference", lambda path: reference)
    asked: list[str] = []

    def synced_bucket(source: str, **options: Any) -> Any:  # the gate's reader, pointed at the bucket's copy
        asked.append(source)
        return read(source.replace("s3://logger-output", str(tmp_path)), **options)

    read = steps.payload_table
    monkeypatch.setattr(steps, "payload_table", synced_bucket)
    logged: dict[str, float] = {}
    metrics = SimpleNamespace(log_metric=logged.__setitem__)
    report = SimpleNamespace(path=str(tmp_path / "report.html"))
    config = {
        "model_name": "breast-cancer",
        "service": "iris",
        "logger_url": "s3://logger-output/logs",
        "namespace": "models",
        "options": {"min_rows": 50},
    }

    retrain = steps.monitor_step(
        config, payloads="", force=False, metrics=metrics, report=report, flag_path=str(tmp_path / "flag")
    )

    assert asked == ["s3://logger-output/logs/models/iris/predictor/payloads"]
    assert retrain is True and (tmp_path / "flag").read_text() == "true"
    assert logged["served_rows"] == 120.0


def test_the_gate_finds_the_prefix_from_the_deploy_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nb2pipe.monitoring import steps

    pod_namespace = tmp_path / "namespace"
    monkeypatch.setattr(steps, "POD_NAMESPACE_FILE", pod_namespace)
    config = {"service": "iris", "logger_url": LOGGER_URL}
    assert steps.logged_payloads_of({**config, "namespace": "models"}) == f"{LOGGER_URL}/models/iris/predictor/payloads"
    assert steps.logged_payloads_of(config) == ""  # no namespace known: the local default stays
    pod_namespace.write_text("kubeflow-user-example-com\n")
    assert steps.logged_payloads_of(config) == f"{LOGGER_URL}/kubeflow-user-example-com/iris/predictor/payloads"
    assert steps.logged_payloads_of({**config, "logger_url": "http://broker/"}) == ""  # nothing nb2pipe reads
