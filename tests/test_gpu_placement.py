"""GPU type and placement when deploying (issue 22, item 4): ``gpu:N:TYPE`` on the deploy cell and
``nb2pipe deploy --gpu N --gpu-type TYPE`` name an extended resource (with '/') or a GPU product as
NVIDIA's GPU Feature Discovery labels nodes; the InferenceService requests the resource, selects the
product's nodes and tolerates the GPU nodes' NoSchedule taint; redeployments keep hand-added placement."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from nb2pipe.cli import main
from nb2pipe.deploy_checks import GPU_PRODUCT_LABEL, deploy_problems, gpu_placement
from nb2pipe.errors import Nb2PipeError
from nb2pipe.ir import DeploySettings
from nb2pipe.lifecycle import kserve_behaviour
from nb2pipe.lifecycle.cluster import apply_inference_service
from nb2pipe.lifecycle.deploy import deploy_model
from nb2pipe.lifecycle.inference_service import ServedModel, inference_service
from nb2pipe.lifecycle.kserve_rules import admission_problems
from tests.support.crd_schema import validate_resource
from tests.support.fake_kserve import offline_model, point_kubeconfig_at
from tests.support.lifecycle_notebooks import lifecycle_notebook
from tests.support.loopback import LoopbackServer
from tests.support.nbtools import diagnostics_of, plan_of

H100 = "NVIDIA-H100-80GB-HBM3"
#: what torch.cuda.get_device_name() and nvidia-smi print for that GPU
H100_AS_PRINTED = "NVIDIA H100 80GB HBM3"
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
#: placement a user added to the running service by hand
HAND_SELECTOR = {"pool": "inference"}
HAND_TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}


def rendered(settings: DeploySettings, version: str = "1") -> dict[str, Any]:
    model = ServedModel(f"models:/cancer/{version}", "sklearn", f"s3://models/cancer/{version}", version)
    resource = inference_service("cancer", model, settings)
    validate_resource(resource)
    return resource


def placement_of(predictor: dict[str, Any]) -> tuple[Any, Any, Any]:
    return predictor["model"].get("resources"), predictor.get("nodeSelector"), predictor.get("tolerations")


# --- tag -> settings -> InferenceService ------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "resource", "selector", "taints"),
    [
        ("gpu:2", "nvidia.com/gpu", None, ["nvidia.com/gpu"]),
        (f"gpu:2:{H100}", "nvidia.com/gpu", {GPU_PRODUCT_LABEL: H100}, ["nvidia.com/gpu"]),
        (
            "gpu:2:NVIDIA-A100-SXM4-40GB-MIG-1g.5gb",  # the "single" MIG strategy: slices are nvidia.com/gpu
            "nvidia.com/gpu",
            {GPU_PRODUCT_LABEL: "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"},
            ["nvidia.com/gpu"],
        ),
        # the "mixed" strategy: a slice is its own resource, on nodes tainted as GPU nodes
        ("gpu:2:nvidia.com/mig-1g.18gb", "nvidia.com/mig-1g.18gb", None, ["nvidia.com/mig-1g.18gb", "nvidia.com/gpu"]),
        ("gpu:2:amd.com/gpu", "amd.com/gpu", None, ["amd.com/gpu"]),
    ],
)
def test_the_deploy_cells_gpu_type_places_the_replicas(tag: str, resource: str, selector: Any, taints: list[str]):
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api", tag))
    (item,) = plan_of(nb).lifecycle
    assert item.deployment is not None
    settings = item.deployment.settings
    assert settings.gpu == 2

    predictor = rendered(settings)["spec"]["predictor"]
    resources, node_selector, tolerations = placement_of(predictor)
    assert resources == {"limits": {resource: "2"}, "requests": {resource: "2"}}
    assert node_selector == selector
    assert tolerations == [{"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in taints]


def test_a_gpu_name_as_pytorch_prints_it_becomes_gfds_label_value():
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api", "gpu:1"))
    nb["metadata"]["nb2pipe"] = {"deploy": {"gpu_type": H100_AS_PRINTED}}
    (item,) = plan_of(nb).lifecycle
    assert item.deployment is not None
    assert item.deployment.settings.gpu_type == H100_AS_PRINTED

    resource = rendered(item.deployment.settings)
    assert resource["spec"]["predictor"]["nodeSelector"] == {GPU_PRODUCT_LABEL: H100}
    line = kserve_behaviour.effective_behaviour(resource)[4]
    assert line.startswith(
        f"resources: 1 nvidia.com/gpu (requests = limits); only on nodes labelled {GPU_PRODUCT_LABEL}={H100} ("
    )
    assert "the GPU's name with spaces as '-'" in line
    assert line.endswith("; pods tolerate the taint nvidia.com/gpu:NoSchedule")


def test_without_gpus_nothing_is_placed():
    predictor = rendered(DeploySettings(gpu_type=H100, cpu="1"))["spec"]["predictor"]
    assert "nodeSelector" not in predictor and "tolerations" not in predictor
    assert gpu_placement(DeploySettings(gpu_type=H100)) is None
    assert kserve_behaviour.effective_behaviour(rendered(DeploySettings()))[4] == (
        "resources: the serving runtime's defaults, no GPU"
    )


# --- what Kubernetes would refuse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "gpu_type",
    [
        "nvidia.com/gpu",
        "nvidia.com/mig-1g.18gb",
        "amd.com/gpu",
        "gpu.intel.com/i915",
        "example.com/" + "a" * 63,
        "a" * 244 + "/gpu",  # "requests." + the domain: 253 characters, the most
        H100,
        H100_AS_PRINTED,
        "NVIDIA-H200",
        "Tesla-T4",
        "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb",
        "A" * 63,
    ],
)
def test_resource_names_and_gpu_products_kubernetes_accepts_pass(gpu_type: str):
    assert deploy_problems(DeploySettings(gpu=1, gpu_type=gpu_type)) == []


RESOURCE_FIX = "write DOMAIN/NAME as your device plugin advertises it"
PRODUCT_FIX = f"kubectl get nodes -L {GPU_PRODUCT_LABEL}"
NAME_SPELLED = "ASCII letters, digits, '-', '_' and '.', starting and ending with a letter or digit"


@pytest.mark.parametrize(
    ("gpu_type", "reason", "fix"),
    [
        ("nvidia.com/gpu/0", "it has more than one '/'", RESOURCE_FIX),
        ("kubernetes.io/gpu", "names in the kubernetes.io namespace are Kubernetes' own", RESOURCE_FIX),
        ("node.kubernetes.io/gpu", "names in the kubernetes.io namespace are Kubernetes' own", RESOURCE_FIX),
        ("requests.nvidia.com/gpu", "names starting with 'requests.' are resource quota names", RESOURCE_FIX),
        ("NVIDIA.com/gpu", "the part before '/' must be lowercase letters, digits, '-' and '.'", RESOURCE_FIX),
        ("/gpu", "the part before '/' is empty", RESOURCE_FIX),
        ("nvidia_com/gpu", "the part before '/' must be lowercase letters", RESOURCE_FIX),
        ("nvidia..com/gpu", "the part before '/' must have a letter or digit on each side of every '.'", RESOURCE_FIX),
        ("nvidia.-com/gpu", "the part before '/' must have a letter or digit on each side of every '.'", RESOURCE_FIX),
        ("a" * 245 + "/gpu", "the part before '/' has more than 244 characters", RESOURCE_FIX),
        ("nvidia.com/", "the part after '/' is empty", RESOURCE_FIX),
        ("nvidia.com/mig 1g", "the part after '/' must be ASCII letters, digits, '-', '_' and '.'", RESOURCE_FIX),
        ("nvidia.com/-gpu", f"the part after '/' must be {NAME_SPELLED}", RESOURCE_FIX),
        ("example.com/" + "a" * 64, "the part after '/' has more than 63 characters", RESOURCE_FIX),
        ("", "the label value is empty", PRODUCT_FIX),
        ("A" * 64, "the label value has more than 63 characters", PRODUCT_FIX),
        ("H100 (80GB)", "the label value must be ASCII letters, digits", PRODUCT_FIX),
        ("NVIDIA:H100", "the label value must be ASCII letters, digits", PRODUCT_FIX),
        ("NVIDIA-H100-", f"the label value must be {NAME_SPELLED}", PRODUCT_FIX),
        ("_H100", f"the label value must be {NAME_SPELLED}", PRODUCT_FIX),
    ],
)
def test_a_gpu_type_kubernetes_would_refuse_is_a_problem_naming_it_and_the_fix(gpu_type: str, reason: str, fix: str):
    (problem,) = deploy_problems(DeploySettings(gpu=1, gpu_type=gpu_type))
    kind = "an extended resource name" if "/" in gpu_type else "a node label value"
    assert problem.startswith(f"GPU {'type' if '/' in gpu_type else 'product'} {gpu_type!r}")
    assert f"is not {kind}: {reason}" in problem
    assert fix in problem
    with pytest.raises(Nb2PipeError) as caught:
        rendered(DeploySettings(gpu=1, gpu_type=gpu_type))
    assert str(caught.value) == problem


def test_a_product_changed_by_its_spaces_is_shown_as_written_and_as_the_label():
    (problem,) = deploy_problems(DeploySettings(gpu=1, gpu_type="NVIDIA H100 (SXM)"))
    assert problem.startswith("GPU product 'NVIDIA H100 (SXM)' (label value 'NVIDIA-H100-(SXM)') is not a node label")


def test_a_bad_gpu_type_on_the_deploy_cell_is_a_compile_diagnostic_there():
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api", "gpu:1:H100/80GB"))
    (found,) = [d for d in diagnostics_of(nb) if d.code == "bad-tag"]
    # the tag's own check (the same for a step's gpu: tag) names the tag as written
    assert found.message.startswith("tag 'gpu:1:H100/80GB': GPU type 'H100/80GB' is not an extended resource name: ")
    assert found.location.cell == 2  # the deploy cell (load, train, serving)
    assert "nb.ipynb" in found.format()


def test_a_bad_gpu_type_in_the_notebook_metadata_is_reported():
    nb = lifecycle_notebook("register:iris", deploy_tags=("deploy:iris-api", "gpu:1"))
    nb["metadata"]["nb2pipe"] = {"deploy": {"gpu_type": "H100 (SXM)"}}
    messages = [d.message for d in diagnostics_of(nb)]
    assert any("GPU product 'H100 (SXM)'" in message for message in messages)


# --- the CLI -----------------------------------------------------------------------------------------


DRY_RUN = ["deploy", "models:/cancer/1", "--name", "cancer", "--mode", "knative", "--dry-run"]


def test_cli_dry_run_with_a_gpu_product(offline, capsys):
    assert main([*DRY_RUN, "--gpu", "1", "--gpu-type", H100_AS_PRINTED]) == 0
    captured = capsys.readouterr()
    resource = yaml.safe_load(captured.out)
    validate_resource(resource)
    assert admission_problems(resource) == []
    resources, selector, tolerations = placement_of(resource["spec"]["predictor"])
    assert resources == {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}
    assert (selector, tolerations) == ({GPU_PRODUCT_LABEL: H100}, [GPU_TAINT])
    behaviour = kserve_behaviour.effective_behaviour(resource)
    assert f"  {behaviour[4]}" in captured.err.splitlines()


def test_cli_dry_run_with_a_mig_resource(offline, capsys):
    assert main([*DRY_RUN, "--gpu", "1", "--gpu-type", "nvidia.com/mig-1g.18gb"]) == 0
    resource = yaml.safe_load(capsys.readouterr().out)
    validate_resource(resource)
    resources, selector, tolerations = placement_of(resource["spec"]["predictor"])
    assert resources["limits"] == {"nvidia.com/mig-1g.18gb": "1"}
    assert selector is None
    assert [t["key"] for t in tolerations] == ["nvidia.com/mig-1g.18gb", "nvidia.com/gpu"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpu", "1", "--gpu-type", "H100 80GB!"], "nb2pipe: GPU product 'H100 80GB!' (label value 'H100-80GB!')"),
        (["--gpu", "1", "--gpu-type", "kubernetes.io/gpu"], "nb2pipe: GPU type 'kubernetes.io/gpu' is not an"),
        (["--gpu-type", H100], f"nb2pipe: --gpu-type {H100} names what --gpu counts: add --gpu N"),
    ],
)
def test_cli_refuses_a_bad_gpu_type_in_one_line(offline, capsys, argv: list[str], message: str):
    assert main([*DRY_RUN, *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(message)


# --- redeployments -----------------------------------------------------------------------------------

TOKEN = "gpu-token"


@pytest.fixture
def cluster(kserve_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    point_kubeconfig_at(monkeypatch, tmp_path / "kubeconfig.yaml", kserve_server.url, TOKEN)
    return kserve_server


def by_hand(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` as a user left it after adding placement of their own (kubectl edit)."""
    edited = copy.deepcopy(resource)
    predictor = edited["spec"]["predictor"]
    predictor["nodeSelector"] = {**(predictor.get("nodeSelector") or {}), **HAND_SELECTOR}
    predictor["tolerations"] = [*(predictor.get("tolerations") or []), HAND_TOLERATION]
    return edited


def redeploy(cluster: LoopbackServer, running: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    cluster.fake.store(running, "models")
    apply_inference_service(new, wait_seconds=5, poll=0.05)
    stored = cluster.fake.service("models", "cancer")
    validate_resource(stored)
    return stored["spec"]["predictor"]


def test_a_redeployment_without_gpus_clears_what_nb2pipe_wrote(cluster):
    predictor = redeploy(cluster, rendered(DeploySettings(gpu=1, gpu_type=H100)), rendered(DeploySettings()))
    assert "nodeSelector" not in predictor and "tolerations" not in predictor
    assert predictor == rendered(DeploySettings())["spec"]["predictor"]


def test_a_redeployment_keeps_hand_added_placement(cluster):
    running = by_hand(rendered(DeploySettings(gpu=1, gpu_type=H100)))
    predictor = redeploy(cluster, running, rendered(DeploySettings()))
    assert predictor["nodeSelector"] == HAND_SELECTOR
    assert predictor["tolerations"] == [HAND_TOLERATION]
    assert "resources" not in predictor["model"]


def test_a_redeployment_on_another_gpu_moves_nb2pipes_placement_only(cluster):
    running = by_hand(rendered(DeploySettings(gpu=1, gpu_type=H100)))
    predictor = redeploy(cluster, running, rendered(DeploySettings(gpu=1, gpu_type="nvidia.com/mig-1g.18gb")))
    assert predictor["nodeSelector"] == HAND_SELECTOR  # the product label is nb2pipe's: gone
    mig_taints = [
        {"key": "nvidia.com/mig-1g.18gb", "operator": "Exists", "effect": "NoSchedule"},
        GPU_TAINT,
    ]
    # kept where they were (a reordered pod template would restart the pods), the new one after them
    assert predictor["tolerations"] == [GPU_TAINT, HAND_TOLERATION, mig_taints[0]]

    predictor = redeploy(cluster, by_hand(rendered(DeploySettings())), rendered(DeploySettings(gpu=1, gpu_type=H100)))
    assert predictor["nodeSelector"] == {**HAND_SELECTOR, GPU_PRODUCT_LABEL: H100}
    assert predictor["tolerations"] == [HAND_TOLERATION, GPU_TAINT]


def test_a_hand_added_toleration_for_a_resource_nb2pipe_did_not_request_stays(cluster):
    fpga = {"key": "example.com/fpga", "operator": "Exists", "effect": "NoSchedule"}
    running = rendered(DeploySettings(gpu=1))
    running["spec"]["predictor"]["tolerations"].append(fpga)
    predictor = redeploy(cluster, running, rendered(DeploySettings()))
    assert predictor["tolerations"] == [fpga]


# --- Standard mode's canary: each model on its own GPUs' nodes ---------------------------------------

STANDARD_CANARY = DeploySettings(
    mode="standard", canary_percent=20, kserve_version="0.20", min_replicas=2, max_replicas=4
)


def test_a_standard_canary_on_another_gpu_keeps_the_stable_where_it_runs(
    cluster, monkeypatch: pytest.MonkeyPatch, model_folder: Path
):
    def deploy(version: str, gpu_type: str) -> dict[str, Any]:
        offline_model(monkeypatch, model_folder, version)
        deploy_model(
            "models:/cancer/latest", "cancer", replace(STANDARD_CANARY, gpu=1, gpu_type=gpu_type), wait_seconds=5
        )
        stored = cluster.fake.service("models", "cancer")
        validate_resource(stored)
        assert admission_problems(stored) == []
        return stored

    first = deploy("1", H100)
    cluster.fake.store(by_hand(first), "models")
    spec = deploy("2", "NVIDIA-H200")["spec"]
    stable, (canary,) = spec["predictor"], spec["canary"]
    assert stable["model"]["storageUri"] == "s3://models/cancer/1"
    assert stable["nodeSelector"] == {GPU_PRODUCT_LABEL: H100, **HAND_SELECTOR}
    assert stable["tolerations"] == [GPU_TAINT, HAND_TOLERATION]
    assert canary["predictor"]["model"]["storageUri"] == "s3://models/cancer/2"
    assert canary["predictor"]["nodeSelector"] == {**HAND_SELECTOR, GPU_PRODUCT_LABEL: "NVIDIA-H200"}
    assert canary["predictor"]["tolerations"] == [GPU_TAINT, HAND_TOLERATION]
