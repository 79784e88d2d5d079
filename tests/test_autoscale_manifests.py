"""manifests/overlays/autoscale: the Deployment that runs ``nb2pipe autoscale``, with just the RBAC
its actuator uses, rendered the way tests/test_manifests.py renders the other entry points."""

from __future__ import annotations

import argparse
import os
import subprocess

import yaml

from nb2pipe.cli import autoscale as autoscale_cli
from tests.test_manifests import (
    DNS1123_SUBDOMAIN,
    MANIFESTS,
    allows,
    container,
    env_of,
    find,
    ident,
    kustomize_command,
    rendered,
)

ENTRY = "overlays/autoscale"


def test_every_resource_is_namespaced_labelled_and_named() -> None:
    docs = rendered(ENTRY)
    assert {doc["kind"] for doc in docs} == {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment"}
    for doc in docs:
        assert doc["metadata"]["namespace"] == "kubeflow-user-example-com"
        assert DNS1123_SUBDOMAIN.match(doc["metadata"]["name"])
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "nb2pipe"


def test_the_role_allows_what_the_actuator_does_and_nothing_more() -> None:
    docs = rendered(ENTRY)
    rules = find(docs, "Role", "nb2pipe-autoscaler")["rules"]
    for resource in ("inferenceservices", "inferencegraphs"):
        for verb in ("get", "patch"):
            assert allows(rules, "serving.kserve.io", resource, verb), (resource, verb)
        for verb in ("create", "delete", "update", "list"):
            assert not allows(rules, "serving.kserve.io", resource, verb), (resource, verb)
    binding = find(docs, "RoleBinding", "nb2pipe-autoscaler")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "nb2pipe-autoscaler"}
    # written without a namespace: kustomize gives it the overlay's, as it does the ServiceAccount
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "nb2pipe-autoscaler", "namespace": "kubeflow-user-example-com"}
    ]


def test_the_deployment_runs_one_loop_with_arguments_the_command_accepts() -> None:
    docs = rendered(ENTRY)
    deployment = find(docs, "Deployment", "nb2pipe-autoscaler")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}  # never two loops at once
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "nb2pipe-autoscaler"
    loop = container(deployment, "autoscaler")
    config = find(docs, "ConfigMap", "nb2pipe-autoscale")["data"]
    env = env_of(loop)
    values = {}
    for name in ("SERVICE", "PROMETHEUS_URL"):
        ref = env[name]["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == "nb2pipe-autoscale"
        values[name] = config[ref["key"]]
    command = [part.replace("$(SERVICE)", values["SERVICE"]) for part in loop["command"]]
    command = [part.replace("$(PROMETHEUS_URL)", values["PROMETHEUS_URL"]) for part in command]
    assert command[:2] == ["nb2pipe", "autoscale"]
    parser = argparse.ArgumentParser()
    autoscale_cli.add_commands(parser.add_subparsers())
    args = parser.parse_args(command[1:])
    assert (args.service, args.prometheus_url) == ("digits", "http://prometheus-server.monitoring.svc:9090")
    assert not args.dry_run and not args.once and args.turns is None  # runs until stopped
    mount = next(m for m in loop["volumeMounts"] if m["name"] == "plan")
    assert os.path.dirname(args.plan) == mount["mountPath"] and mount["readOnly"]
    volume = next(v for v in pod["volumes"] if v["name"] == "plan")
    assert volume["configMap"]["name"] == "nb2pipe-autoscale-plan"


def test_real_kustomize_agrees() -> None:
    command = kustomize_command()
    env = {**os.environ, "KUBECONFIG": os.devnull}
    done = subprocess.run(
        [*command, str(MANIFESTS / ENTRY)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    real = {ident(doc): doc for doc in yaml.safe_load_all(done.stdout) if doc}
    ours = {ident(doc): doc for doc in rendered(ENTRY)}
    # kustomize also writes its namespace into a binding's subjects that have none (the renderer
    # of tests/test_manifests.py only into those named "default")
    for subject in ours["rbac.authorization.k8s.io", "RoleBinding", "kubeflow-user-example-com", "nb2pipe-autoscaler"][
        "subjects"
    ]:
        subject.setdefault("namespace", "kubeflow-user-example-com")
    assert real == ours
