"""``nb2pipe serve`` against an attacker: a seeded storm of hostile requests over raw sockets
(tests/support/hostile_requests.py, sent by tests/support/hostile.py: malformed HTTP, odd
headers, hostile bodies, wrong routes and methods, pipelining, stalled clients), then focused
checks: the repository extension off by default and truthful readiness when it is on, the
version paths, bad binary header lengths, oversized headers,
stalled clients, the model metadata and the log file.

The contract: never a 5xx for client input, every complete request answered (no close or reset
without a response), stalled clients cut off within the read timeout, the server alive and
predicting as before afterwards, its memory and its log bounded. Every failure names the
request class that broke the promise."""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.hostile import (
    FIVE_XX,
    NOT_ALLOWED,
    NOT_CUT_OFF,
    UNANSWERED,
    Outcome,
    RssPeak,
    StormReport,
    group_rss,
    pipeline_flood,
    problems,
    run_storm,
    storm_against,
    tally,
)
from tests.support.hostile_requests import (
    BAD_HEADER_LENGTHS,
    CLIENT_ERROR,
    CLOSED,
    JSON,
    RESET,
    Job,
    Probe,
    RequestBook,
    Served,
    hostile_jobs,
    http,
)
from tests.support.registered import RegisteredModel
from tests.support.served import Server, serving

pytestmark = pytest.mark.slow  # real model servers on a model registered in MLflow

NAME = "cancer"
SEED = 19
STORM_REQUESTS = 6000
THREADS = 8
READ_TIMEOUT_S = 2.0
#: a stalled client must be cut off within READ_TIMEOUT_S + this (2 shared cores: generous)
SLOW_MARGIN_S = 4.0
SLOW_BOUND_S = READ_TIMEOUT_S + SLOW_MARGIN_S
#: the storm's bounds: server memory growth, log bytes per rejected request
RSS_GROWTH_BYTES = 50 * 2**20
LOG_BYTES_PER_REJECTION = 400
#: an oversized header must not grow the server by more than this (it is refused, not kept)
HEADER_RSS_GROWTH_BYTES = 25 * 2**20
ROWS = 3
#: --max-header-bytes of the second server
SMALL_HEADER_LIMIT = 8192
#: bytes of tiny pipelined requests sent on one connection at once
FLOOD_BYTES = 2 * 2**20


@dataclass(frozen=True)
class Answers:
    """What the server answered for the same rows through v1 and v2."""

    v1: Any
    v2: Any


def served_model(registered_model: RegisteredModel) -> Served:
    features = registered_model.features
    version = registered_model.model_uri.rsplit("/", 1)[-1]
    return Served(NAME, version, tuple(map(str, features.columns)), tuple(map(float, features.iloc[0])))


def v2_request(rows: list[list[float]]) -> dict[str, Any]:
    data = [value for row in rows for value in row]
    tensor = {"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": data}
    return {"id": "known", "inputs": [tensor]}


def known_answers(server: Server, registered_model: RegisteredModel) -> Answers:
    rows = registered_model.features.iloc[:ROWS].values.tolist()
    v1 = server.post_json(f"/v1/models/{NAME}:predict", {"instances": rows})
    status, body = server.post_json(f"/v2/models/{NAME}/infer", v2_request(rows))
    return Answers(v1, (status, body.get("outputs") if isinstance(body, dict) else body))


def summary(counts: Counter[tuple[str, str]], limit: int = 400) -> str:
    """The outcome Counter, class by class, for failure messages."""
    lines = [f"  {kind:40} {label:8} {count}" for (kind, label), count in sorted(counts.items())]
    text = "\n".join(lines)
    return "\noutcomes (class, outcome, count):\n" + (text if len(lines) < limit else text[:20000])


def common_log_lines(text: str, top: int = 5) -> str:
    """The most repeated log lines, timestamps and numbers masked: what fills a log."""
    shapes = Counter(re.sub(r"\d+", "N", line)[:200] for line in text.splitlines())
    return "\n".join(f"  {count} x {line}" for line, count in shapes.most_common(top))


# --- the servers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(registered_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Default options but a short read timeout (slow-client cases take seconds, not minutes)."""
    folder = tmp_path_factory.mktemp("hostile")
    extra = ("--read-timeout", f"{READ_TIMEOUT_S:g}")
    with serving(registered_model.model_uri, NAME, registered_model.tracking_uri, folder, *extra) as running:
        yield running


@pytest.fixture(scope="module")
def repository_server(
    registered_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    """--model-repository on, logging to a rotating file, a small header limit."""
    folder = tmp_path_factory.mktemp("hostile-repository")
    log_file = folder / "logs" / "serve.log"
    extra = ("--model-repository", "--log-file", str(log_file), "--max-header-bytes", str(SMALL_HEADER_LIMIT))
    with serving(registered_model.model_uri, NAME, registered_model.tracking_uri, folder, *extra) as running:
        yield running, log_file


@pytest.fixture(scope="module")
def storm(server: Server, registered_model: RegisteredModel) -> Iterator[tuple[StormReport, Answers, Answers]]:
    """One seeded storm against ``server``: its report, and the known rows' answers before and after."""
    before = known_answers(server, registered_model)
    for _ in range(50):  # warm: the first requests allocate what every later one reuses
        known_answers(server, registered_model)
    jobs = hostile_jobs(served_model(registered_model), SEED, STORM_REQUESTS)
    report = storm_against(
        server.process.pid, server.log, server.port, jobs, threads=THREADS, stall_limit=SLOW_BOUND_S + 4
    )
    after = known_answers(server, registered_model) if server.process.poll() is None else Answers(None, None)
    yield report, before, after


# --- the storm ----------------------------------------------------------------------------------

Storm = tuple[StormReport, Answers, Answers]


def assert_kept(storm: Storm, rule: str) -> None:
    report, _, _ = storm
    broken = problems(report.outcomes, SLOW_BOUND_S, rule)
    assert not broken, "\n".join(broken) + summary(tally(report.outcomes))


def test_the_storm_sends_thousands_of_requests_over_every_route(storm: Storm):
    report, _, _ = storm
    kinds = {o.kind for o in report.outcomes}
    assert len(report.outcomes) >= 5000, f"{len(report.outcomes)} requests" + summary(tally(report.outcomes))
    for family in ("v1-", "v2-", "repository-", "health-", "stall-", "header-", "content-length-"):
        assert any(kind.startswith(family) for kind in kinds), f"no {family}* request in the storm"


def test_no_5xx_for_client_input(storm: Storm):
    assert_kept(storm, FIVE_XX)


def test_every_complete_request_gets_an_answer(storm: Storm):
    """No complete request closed or reset without a response, none left past its time bound."""
    assert_kept(storm, UNANSWERED)


def test_every_class_gets_an_outcome_it_allows(storm: Storm):
    """404 for unknown models and paths, 405 for wrong methods, 400 for bad binary header lengths,
    4xx for hostile bodies, 200 for what a client means to send, and so on, class by class."""
    assert_kept(storm, NOT_ALLOWED)


def test_stalled_clients_are_cut_off_within_the_read_timeout(storm: Storm):
    report, _, _ = storm
    assert sum(not o.complete and o.kind.startswith(("stall-", "trickle-")) for o in report.outcomes) >= 10
    assert_kept(storm, NOT_CUT_OFF)
    slow = Counter(o.label for o in report.outcomes if o.kind == "slow-but-complete")
    assert set(slow) == {"200"}, f"slow-but-complete (within the read timeout): {slow}"


def test_the_server_is_alive_ready_and_predicts_the_same_after_the_storm(
    server: Server, registered_model: RegisteredModel, storm: Storm
):
    report, before, after = storm
    counts = summary(tally(report.outcomes))
    assert server.process.poll() is None, f"the server exited ({server.process.returncode})" + counts
    assert server.request("GET", "/v2/health/ready")[0] == 200, counts
    expected = registered_model.model.predict(registered_model.features.iloc[:ROWS]).tolist()
    assert before.v1 == (200, {"predictions": expected})
    assert after == before, f"before the storm {before}, after it {after}" + counts


def test_the_storm_does_not_grow_the_servers_memory(storm: Storm):
    report, _, _ = storm
    grown = report.rss_after - report.rss_before
    assert report.rss_before > 0, "no RSS read from /proc for the server's process group"
    assert grown < RSS_GROWTH_BYTES, f"RSS grew {grown / 2**20:.1f} MiB" + summary(tally(report.outcomes))


def test_client_errors_are_logged_in_one_short_line_each(storm: Storm):
    report, _, _ = storm
    added = len(report.log_added.encode())
    assert "Traceback" not in report.log_added, (
        "a traceback in the log:\n" + report.log_added[report.log_added.index("Traceback") :][:3000]
    )
    assert report.rejected > 500
    per_rejection = added / report.rejected
    assert per_rejection < LOG_BYTES_PER_REJECTION, (
        f"log grew {added} bytes for {report.rejected} rejected requests ({per_rejection:.0f} each); "
        f"most repeated lines:\n{common_log_lines(report.log_added)}"
    )


# --- focused checks -----------------------------------------------------------------------------


def test_the_repository_routes_answer_404_by_default(server: Server, registered_model: RegisteredModel):
    for action in ("unload", "load"):
        for name in (NAME, "other"):
            status, body = server.request("POST", f"/v2/repository/models/{name}/{action}")
            assert status == 404, f"repository-{action} of {name} -> {status} {body!r:.200}"
    assert server.request("GET", "/v2/health/ready")[0] == 200
    assert server.request("GET", f"/v2/models/{NAME}/ready")[0] == 200
    expected = registered_model.model.predict(registered_model.features.iloc[:ROWS]).tolist()
    assert known_answers(server, registered_model).v1 == (200, {"predictions": expected})


def test_unload_makes_readiness_fail_and_load_brings_it_back(
    repository_server: tuple[Server, Path], registered_model: RegisteredModel
):
    server, _ = repository_server
    version = served_model(registered_model).version
    readiness = ("/v2/health/ready", f"/v2/models/{NAME}/ready", f"/v2/models/{NAME}/versions/{version}/ready")
    before = known_answers(server, registered_model)
    assert [server.request("GET", path)[0] for path in readiness] == [200, 200, 200]
    assert server.request("POST", "/v2/repository/models/other/unload")[0] == 404, "unload of an unknown model"

    status, body = server.request("POST", f"/v2/repository/models/{NAME}/unload")
    assert status == 200, f"repository-unload -> {status} {body!r:.300}"
    after_unload = {path: server.request("GET", path)[0] for path in readiness}
    assert after_unload[readiness[0]] == 503, f"/v2/health/ready after unload: {after_unload}"
    assert after_unload[readiness[1]] == 503, f"model readiness after unload: {after_unload}"
    assert server.request("GET", "/v2/health/live")[0] == 200, "unloaded is not dead: liveness stays 200"

    status, body = server.request("POST", f"/v2/repository/models/{NAME}/load")
    assert status == 200, f"repository-load -> {status} {body!r:.300}"
    assert [server.request("GET", path)[0] for path in readiness] == [200, 200, 200], "readiness after load"
    assert known_answers(server, registered_model) == before, "predictions after unload + load"


def test_the_version_path_answers_for_the_served_version_only(server: Server, registered_model: RegisteredModel):
    version = served_model(registered_model).version
    request = v2_request(registered_model.features.iloc[:ROWS].values.tolist())
    plain = server.post_json(f"/v2/models/{NAME}/infer", request)
    versioned = server.post_json(f"/v2/models/{NAME}/versions/{version}/infer", request)
    assert versioned[0] == 200 and plain[0] == 200, f"v2-version-infer -> {versioned}"
    assert versioned[1]["outputs"] == plain[1]["outputs"]
    assert server.request("GET", f"/v2/models/{NAME}/versions/{version}/ready") == server.request(
        "GET", f"/v2/models/{NAME}/ready"
    )
    assert server.request("GET", f"/v2/models/{NAME}/versions/{version}") == server.request("GET", f"/v2/models/{NAME}")
    others = [(NAME, str(int(version) + 1)), (NAME, "0"), (NAME, "latest"), (NAME, "1.0"), ("other", version)]
    for name, other in others:
        base = f"/v2/models/{name}/versions/{other}"
        answers = {
            "infer": server.post_json(base + "/infer", request)[0],
            "ready": server.request("GET", base + "/ready")[0],
            "metadata": server.request("GET", base)[0],
        }
        assert answers == {"infer": 404, "ready": 404, "metadata": 404}, f"{name} version {other!r}: {answers}"


def test_a_bad_inference_header_content_length_is_400(server: Server, registered_model: RegisteredModel):
    book = RequestBook(served_model(registered_model), random.Random(SEED))
    answers = {}
    for label, value in {"valid": None, **BAD_HEADER_LENGTHS}.items():
        outcome = _send_alone(server.port, book.binary(f"/v2/models/{NAME}/infer", value), label, 30)
        answers[label] = f"{outcome.label} {outcome.detail:.100}"
    statuses = {label: answer.split(" ")[0] for label, answer in answers.items()}
    assert statuses == {"valid": "200", **{label: "400" for label in BAD_HEADER_LENGTHS}}, answers


def _probe(kind: str, data: bytes) -> Probe:
    return Probe(kind, data, frozenset({"2xx", "4xx"}))


def _send_alone(port: int, data: bytes, kind: str, seconds: float) -> Outcome:
    (outcome,) = run_storm("127.0.0.1", port, [Job("alone", (_probe(kind, data),))], timeout=seconds)
    return outcome


@pytest.mark.parametrize("size", [1 * 2**20, 100 * 2**20], ids=["1MB", "100MB"])
def test_an_oversized_header_is_refused_without_growing_the_server(server: Server, size: int):
    rss_before = group_rss(server.process.pid)
    started = time.monotonic()
    data = http("GET", "/v2/health/live", b"", [b"X-Big: " + b"h" * size])
    outcome = _send_alone(server.port, data, f"header-{size >> 20}MB", 60)
    del data
    grown = group_rss(server.process.pid) - rss_before
    assert outcome.label in ("431", "400", CLOSED, RESET), f"{outcome.kind} -> {outcome.label} {outcome.detail!r}"
    assert grown < HEADER_RSS_GROWTH_BYTES, f"{outcome.kind}: RSS grew {grown / 2**20:.1f} MiB"
    assert time.monotonic() - started < 30, f"{outcome.kind} took {time.monotonic() - started:.1f} s"
    assert server.request("GET", "/v2/health/ready")[0] == 200


def test_max_header_bytes_sets_the_limit(repository_server: tuple[Server, Path]):
    server, _ = repository_server
    outcomes = {}
    for size in (SMALL_HEADER_LIMIT // 2, SMALL_HEADER_LIMIT + 1024):
        data = http("GET", "/v2/health/live", b"", ["X-Padding: " + "p" * size])
        outcomes[size] = _send_alone(server.port, data, f"header-{size}B", 30).label
    under, over = outcomes.values()
    assert under == "200", (
        f"a {SMALL_HEADER_LIMIT // 2}-byte header under --max-header-bytes {SMALL_HEADER_LIMIT}: {outcomes}"
    )
    assert over in ("431", "400", CLOSED, RESET), f"a header over --max-header-bytes {SMALL_HEADER_LIMIT}: {outcomes}"


def test_a_pipelined_flood_on_one_connection_does_not_grow_the_server(server: Server):
    """Tiny requests pipelined back to back: each is answered, and the server queues only what it
    works on (it stops reading while requests wait), so its memory stays flat."""
    with RssPeak(server.process.pid) as memory:
        sent, answered = pipeline_flood("127.0.0.1", server.port, http("GET", "/v2/health/live"), FLOOD_BYTES, 120)
    assert answered == sent, f"pipelined-flood: {answered} of {sent} requests answered"
    assert memory.grown < RSS_GROWTH_BYTES, (
        f"pipelined-flood: {FLOOD_BYTES >> 20} MiB of pipelined GETs ({sent} requests) grew the server by "
        f"{memory.grown / 2**20:.0f} MiB at its peak"
    )
    assert server.request("GET", "/v2/health/ready")[0] == 200


def test_headers_under_the_limit_are_accepted(server: Server, registered_model: RegisteredModel):
    rows = registered_model.features.iloc[:1].values.tolist()
    body = json.dumps({"instances": rows}).encode()
    data = http("POST", f"/v1/models/{NAME}:predict", body, [JSON, "X-Padding: " + "p" * 60_000])
    outcome = _send_alone(server.port, data, "header-60kB", 30)
    assert outcome.label == "200", f"{outcome.kind} -> {outcome.label} {outcome.detail!r}"


def test_each_kind_of_stalled_client_alone_is_cut_off(server: Server, registered_model: RegisteredModel):
    """The storm's stalled and trickling clients once each, on a quiet server: each is cut off
    (408 or closed) within the read timeout + margin; the slow but complete client is answered."""
    book = RequestBook(served_model(registered_model), random.Random(SEED))
    outcomes = run_storm("127.0.0.1", server.port, book.stalls(), stall_limit=SLOW_BOUND_S + 4)
    found = {o.kind: (o.label, round(o.seconds, 1)) for o in outcomes}
    assert not problems(outcomes, SLOW_BOUND_S), found
    assert server.request("GET", "/v2/health/ready")[0] == 200


def test_v2_json_without_a_content_type_is_accepted(server: Server, registered_model: RegisteredModel):
    request = v2_request(registered_model.features.iloc[:ROWS].values.tolist())
    status, body = server.request("POST", f"/v2/models/{NAME}/infer", json.dumps(request))
    expected = registered_model.model.predict(registered_model.features.iloc[:ROWS]).tolist()
    assert status == 200, f"v2-infer-json-no-content-type -> {status} {body!r:.300}"
    assert body["outputs"][0]["data"] == expected


def test_the_metadata_lists_the_signatures_inputs_and_outputs(server: Server, registered_model: RegisteredModel):
    status, metadata = server.request("GET", f"/v2/models/{NAME}")
    assert status == 200, metadata
    columns = [str(c) for c in registered_model.features.columns]
    assert [item["name"] for item in metadata["inputs"]] == columns, metadata["inputs"]
    assert all(item["datatype"] == "FP64" and isinstance(item["shape"], list) for item in metadata["inputs"])
    assert metadata["outputs"], "v2 metadata without outputs"
    for item in metadata["outputs"]:
        assert item["name"] and item["datatype"] and isinstance(item["shape"], list), metadata["outputs"]


def test_the_log_file_holds_one_short_line_per_client_error(
    repository_server: tuple[Server, Path], registered_model: RegisteredModel
):
    server, log_file = repository_server
    book = RequestBook(served_model(registered_model), random.Random(SEED))
    bad = [kind for kind, spec in book.framed_specs.items() if spec[1] == CLIENT_ERROR]
    jobs = [Job("keepalive", tuple(book.probe(kind) for kind in random.Random(SEED).choices(bad, k=300)))]
    sizes_before = _log_sizes(log_file)
    outcomes = run_storm("127.0.0.1", server.port, jobs)
    statuses = Counter((o.kind, o.label) for o in outcomes if not o.label.startswith("4"))
    assert not statuses, f"client errors not answered 4xx: {dict(statuses)}"
    assert log_file.exists(), f"--log-file {log_file} was not written"
    grown = sum(_log_sizes(log_file).values()) - sum(sizes_before.values())
    text = "\n".join(p.read_text(errors="replace") for p in log_file.parent.glob(log_file.name + "*"))
    assert "Traceback" not in text, text[text.index("Traceback") :][:3000]
    assert grown / len(outcomes) < LOG_BYTES_PER_REJECTION, (
        f"{log_file} grew {grown} bytes for {len(outcomes)} client errors; most repeated lines:\n"
        + common_log_lines(text)
    )


def _log_sizes(log_file: Path) -> dict[str, int]:
    return (
        {p.name: p.stat().st_size for p in log_file.parent.glob(log_file.name + "*")}
        if log_file.parent.exists()
        else {}
    )
