"""``nb2pipe submit``: send a compiled pipeline to Kubeflow Pipelines through ``kfp.Client``.

Uploads the pipeline (a new version when one of that name exists), then starts a run, or a
recurring run on a cron schedule or a fixed interval.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nb2pipe.compiler import compile_with_environment, read_notebook_text
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import PackageIndex
from nb2pipe.runners.parameters import coerce_parameters

_PROBE_SECONDS = 4.0
_REQUEST_SECONDS = 30.0
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: ASCII only: str.isdigit also admits '²' and other scripts' digits, which int() refuses
_DIGITS = "0123456789"
#: ten years: a longer interval is a mistake, and sleeps past threading.TIMEOUT_MAX overflow
_MAX_DURATION_SECONDS = 10 * 365 * 86400
_MAX_DURATION_DIGITS = 10
_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"


@dataclass(frozen=True)
class Schedule:
    """A recurring run: a KFP (6-field, seconds first) cron expression or an interval."""

    cron: str | None = None
    interval_seconds: int | None = None


@dataclass(frozen=True)
class Submission:
    pipeline_id: str
    version_id: str
    experiment_id: str
    run_id: str | None
    recurring_run_id: str | None
    url: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def kfp_cron(expression: str) -> str:
    """5-field cron (minute first) -> KFP's 6-field form (seconds first)."""
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise Nb2PipeError(
            f"--schedule {expression!r}: a cron expression has 5 fields "
            "(minute hour day month weekday), e.g. '0 3 * * *'"
        )
    allowed = set("0123456789*/,-?LW#") | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for field_text in fields:
        if not field_text or not set(field_text.upper()) <= allowed:
            raise Nb2PipeError(f"--schedule {expression!r}: {field_text!r} is not a cron field")
    return " ".join(fields)


def parse_duration(text: str) -> int:
    """``90``, ``45s``, ``15m``, ``1h30m``, ``1d`` -> seconds."""
    text = text.strip().lower()
    if text and all(char in _DIGITS for char in text):
        seconds = int(text) if len(text) <= _MAX_DURATION_DIGITS else 0
    else:
        seconds, number = 0, ""
        for char in text:
            if char in _DIGITS and len(number) < _MAX_DURATION_DIGITS:
                number += char
            elif char in _DURATION_UNITS and number:
                seconds += int(number) * _DURATION_UNITS[char]
                number = ""
            else:
                number = "invalid"
                break
        if number:
            seconds = 0
    if seconds <= 0 or seconds > _MAX_DURATION_SECONDS:
        raise Nb2PipeError(f"--every {text[:40]!r}: write a duration such as 30m, 1h, 1h30m or 1d (at most 10 years)")
    return seconds


def probe(host: str, timeout: float = _PROBE_SECONDS) -> None:
    """Fail fast, in one clear line, when nothing answers HTTP at ``host``.

    Any HTTP answer counts (a login redirect or a 401 means the host is there); kfp.Client
    itself would retry an unanswered health check for half a minute.
    """
    import urllib.error
    import urllib.request

    url = f"{host.rstrip('/')}/apis/v2beta1/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise Nb2PipeError(
            f"cannot reach Kubeflow Pipelines at {host} ({reason}); check --host, e.g. "
            "http://localhost:8080 after `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`"
        ) from None


def submit_pipeline(
    pipeline_yaml: str,
    *,
    host: str,
    pipeline_name: str,
    description: str = "",
    experiment: str = "Default",
    run_name: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    namespace: str | None = None,
    schedule: Schedule | None = None,
    token: str | None = None,
) -> Submission:
    probe(host)
    from kfp.client import Client  # not ``from kfp``: a local run imports kfp without its client
    from kfp_server_api import ApiException

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_name = run_name or f"{pipeline_name} {stamp}"
    with _quiet_client(), tempfile.TemporaryDirectory(prefix="nb2pipe-submit-") as scratch:
        package = Path(scratch) / f"{pipeline_name}.yaml"
        package.write_text(pipeline_yaml, encoding="utf-8")
        try:
            client = Client(host=host, namespace=namespace or "kubeflow", **_credentials(token))
            pipeline_id, version_id = _upload(client, package, pipeline_name, description, stamp)
            experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
            common = {
                "experiment_id": experiment_id,
                "job_name": run_name,
                "pipeline_id": pipeline_id,
                "version_id": version_id,
                "params": dict(parameters or {}),
            }
            if schedule is None:
                run = client.run_pipeline(**common)
                url = f"{host.rstrip('/')}/#/runs/details/{run.run_id}"
                return Submission(pipeline_id, version_id, experiment_id, run.run_id, None, url)
            recurring = client.create_recurring_run(
                **common,
                cron_expression=schedule.cron,
                interval_second=schedule.interval_seconds,
                max_concurrency=1,
                no_catchup=True,
                enabled=True,
            )
            return Submission(
                pipeline_id,
                version_id,
                experiment_id,
                None,
                recurring.recurring_run_id,
                f"{host.rstrip('/')}/#/recurringrun/details/{recurring.recurring_run_id}",
            )
        except ApiException as exc:
            raise Nb2PipeError(
                f"Kubeflow Pipelines at {host} answered {exc.status} {exc.reason}: {_api_message(exc)}"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise Nb2PipeError(f"lost the connection to Kubeflow Pipelines at {host}: {exc}") from None


def _upload(client: Any, package: Path, name: str, description: str, stamp: str) -> tuple[str, str]:
    """Upload as a new pipeline, or as a new version of the pipeline with that name."""
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(package), pipeline_name=name, description=description).pipeline_id
        versions = client.list_pipeline_versions(pipeline_id=pipeline_id, page_size=1, sort_by="created_at desc")
        if not versions.pipeline_versions:
            raise Nb2PipeError(f"Kubeflow Pipelines created pipeline {name!r} without a version")
        return pipeline_id, versions.pipeline_versions[0].pipeline_version_id
    version = client.upload_pipeline_version(
        str(package), pipeline_version_name=f"{name}-{stamp}", pipeline_id=pipeline_id, description=description
    )
    return pipeline_id, version.pipeline_version_id


def _credentials(token: str | None) -> dict[str, Any]:
    """``KF_PIPELINES_TOKEN`` (or ``token``), else the in-cluster service-account token."""
    token = token or os.environ.get("KF_PIPELINES_TOKEN")
    if token:
        return {"existing_token": token}
    path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", _SA_TOKEN_PATH)
    if os.path.exists(path):
        from kfp.client import ServiceAccountTokenVolumeCredentials

        return {"credentials": ServiceAccountTokenVolumeCredentials(path)}
    return {}


@contextlib.contextmanager
def _quiet_client() -> Iterator[None]:
    """kfp.Client prints links and has no request timeout: keep stdout ours, bound requests."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_REQUEST_SECONDS)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
            yield
    finally:
        socket.setdefaulttimeout(previous)


def _api_message(exc: Any) -> str:
    import json

    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.body or "").strip()[:300]
    return str(body.get("message") or body.get("error") or body)[:300]


def submit_notebook(
    notebook: str | Path,
    *,
    host: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    parameters: tuple[str, ...] | list[str] = (),
    namespace: str | None = None,
    cron: str | None = None,
    every: str | None = None,
    image: str | None = None,
    base_image: str | None = None,
    monitoring: bool = False,
    package_index: PackageIndex | None = None,
) -> Submission:
    """Compile ``notebook`` as ``nb2pipe compile`` would (its monitoring pipeline when
    ``monitoring``), then submit it to ``host``, else the notebook's ``metadata.nb2pipe.kfp_host``."""

    if cron and every:
        raise Nb2PipeError("choose one of --schedule and --every")
    schedule = None
    if cron:
        schedule = Schedule(cron=kfp_cron(cron))
    elif every:
        schedule = Schedule(interval_seconds=parse_duration(every))
    path = Path(notebook)
    compiled = compile_with_environment(
        read_notebook_text(path),
        str(path),
        image=image,
        base_image=base_image,
        monitoring=monitoring,
        package_index=package_index,
    )
    plan = compiled.plan
    host = host or plan.kfp_host
    if not host:
        raise Nb2PipeError(
            f"{path.name}: no Kubeflow Pipelines host; pass --host URL, or set kfp_host in the notebook's "
            "metadata.nb2pipe (the nb2pipe panel's settings)"
        )
    return submit_pipeline(
        compiled.yaml,
        host=host,
        pipeline_name=plan.name,
        description=plan.description,
        experiment=experiment or plan.experiment or "Default",
        run_name=run_name,
        parameters=coerce_parameters(plan.parameters, list(parameters)),
        namespace=namespace,
        schedule=schedule,
    )
