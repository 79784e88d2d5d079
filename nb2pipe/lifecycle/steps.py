"""What the register and deploy tasks of a compiled pipeline run, inside their containers
(or kfp.local's processes). Their images have nb2pipe installed (see manifests/Dockerfile);
the notebook's own steps do not need it.

Register: load the model and training data the step saved, read the metrics files, log and
register in MLflow, promote, and write ``registration.json`` + a Markdown comparison.
Deploy: when the new version is the champion, serve it — an InferenceService on a cluster
(in a pod, or ``NB2PIPE_DEPLOY_TARGET=kserve``), else a local ``nb2pipe serve`` endpoint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nb2pipe.files import write_whole
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle.cluster import apply_inference_service, in_cluster
from nb2pipe.lifecycle.deploy import render
from nb2pipe.lifecycle.register import PromotionRule, Registration, register_model
from nb2pipe.runtime.step import load_value
from nb2pipe.store.data import inputs_may_be_pending

DEPLOY_TARGET_ENV = "NB2PIPE_DEPLOY_TARGET"


def register_step(
    config: Mapping[str, Any],
    *,
    model: str,
    example: str | None,
    metrics: Sequence[str],
    params: Mapping[str, Any],
    registered: Any,
    report: Any,
) -> None:
    # the local runner may start this task while the steps it reads from still run
    wait = inputs_may_be_pending()
    values: dict[str, float] = {}
    for path in metrics:
        while wait and not os.path.exists(path):
            time.sleep(0.02)
        values.update(_read_metrics(path))
    rule = None
    if config.get("promote_metric"):
        rule = PromotionRule(config["promote_metric"], bool(config.get("higher_is_better", True)))
    registration = Registration(
        model_name=config["model_name"],
        experiment=config["experiment"],
        params=dict(params),
        metrics=values,
        rule=rule,
        run_name=config.get("run_name"),
        tags={"nb2pipe.notebook": config.get("notebook", ""), "nb2pipe.step": config.get("step", "")},
    )
    trained = load_value(model, wait=wait)
    data = load_value(example, wait=wait) if example else None
    result = register_model(trained, data, registration)
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_text(_promotion_markdown(result, values), encoding="utf-8")
    # written last and whole: an early-started deploy task waits for this file to appear
    write_whole(Path(registered.path), json.dumps(result.to_json(), indent=2, sort_keys=True))
    registered.metadata.update(
        {"model_name": result.name, "version": result.version, "uri": result.uri, "champion": result.champion}
    )
    verdict = "champion" if result.champion else "candidate"
    print(f"nb2pipe: registered {result.uri} ({result.flavor}) as {verdict}: {result.promotion.reason}", flush=True)


def _read_metrics(path: str) -> dict[str, float]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int | float)} if isinstance(data, dict) else {}


def _promotion_markdown(result: Any, metrics: Mapping[str, float]) -> str:
    promotion = result.promotion
    lines = [
        f"# {result.name} version {result.version}",
        "",
        f"**{'Promoted to champion' if result.champion else 'Registered as candidate'}**: {promotion.reason}",
        "",
        "| | this version | champion before |",
        "|---|---|---|",
        f"| version | {result.version} | {promotion.champion_version or '—'} |",
    ]
    if promotion.rule:
        lines.append(f"| {promotion.rule} | {_fmt(promotion.candidate_value)} | {_fmt(promotion.champion_value)} |")
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.6g} |" for name, value in sorted(metrics.items())]
    lines += ["", f"MLflow run `{result.run_id}` in `{result.tracking_uri}`"]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def deploy_step(config: Mapping[str, Any], *, registered: str, deployment: Any) -> None:
    while inputs_may_be_pending() and not os.path.exists(registered):
        time.sleep(0.05)
    info = json.loads(Path(registered).read_text(encoding="utf-8"))
    service = config["service"]
    settings = DeploySettings(**config["settings"])
    target = os.environ.get(DEPLOY_TARGET_ENV) or ("kserve" if _in_cluster() else "local")
    outcome: dict[str, Any] = {"service": service, "model_uri": info["uri"], "target": target}
    if not info["champion"]:
        outcome.update(deployed=False, reason=f"version {info['version']} is not the champion; serving is unchanged")
    elif target == "kserve":
        outcome.update(_deploy_to_kserve(info["uri"], service, settings, deployment.path))
    else:
        from nb2pipe.lifecycle.endpoints import start_local

        endpoint = start_local(service, info["uri"], settings)
        outcome.update(deployed=True, url=endpoint.url, pid=endpoint.pid, payloads=endpoint.payloads)
    Path(deployment.path).parent.mkdir(parents=True, exist_ok=True)
    if target != "kserve" or not outcome.get("deployed"):
        Path(deployment.path).write_text(json.dumps(outcome, indent=2, sort_keys=True), encoding="utf-8")
    deployment.metadata.update({k: v for k, v in outcome.items() if isinstance(v, str | int | bool)})
    if outcome.get("deployed"):
        print(f"nb2pipe: {service} serves {info['uri']} at {outcome.get('url')}", flush=True)
    else:
        print(f"nb2pipe: {service}: {outcome['reason']}", flush=True)


def _in_cluster() -> bool:
    return in_cluster()


def _deploy_to_kserve(uri: str, service: str, settings: Any, path: str) -> dict[str, Any]:
    rendered = render(uri, service, settings)
    Path(path).write_text(rendered.yaml, encoding="utf-8")  # the InferenceService, for the UI
    for warning in rendered.warnings:
        print(f"nb2pipe: warning: {warning}", flush=True)
    if rendered.runtime is not None:
        print(f"nb2pipe: {rendered.runtime.describe()}", flush=True)
    for line in rendered.behaviour:
        print(f"nb2pipe: KServe will: {line}", flush=True)
    applied = apply_inference_service(rendered.resource)
    return {"deployed": applied.ready, "url": applied.url or "", "action": applied.action}
