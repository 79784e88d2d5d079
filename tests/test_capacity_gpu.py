"""The device a profile measured a variant on travels into the plan and into ``deploy --plan``:
rates measured on a GPU hold for a replica with a GPU, so the deployed replica asks for one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from nb2pipe.capacity.deployment import render_plan
from nb2pipe.capacity.model import VariantOption, options_for
from nb2pipe.capacity.optimize import Optimizer
from nb2pipe.capacity.plan import CapacityPlan, build_plan, read_plan, write_plan
from nb2pipe.cli import main
from nb2pipe.ir import DeploySettings
from nb2pipe.store.registry import TRACKING_ENV
from tests.support.capacity_profiles import synthetic_profile
from tests.support.crd_schema import validate_resource

H200 = "cuda:0 (NVIDIA H200)"


@pytest.fixture(scope="module")
def torch_model_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small PyTorch MLP registered in a store of its own."""
    import numpy as np
    import torch
    from torch import nn

    from nb2pipe.lifecycle.register import Registration, register_model

    folder = tmp_path_factory.mktemp("gpu-plan-store")
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TRACKING_ENV, tracking)
        torch.manual_seed(0)
        module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        rows = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
        registered = register_model(module, rows, Registration("gpu-mlp", "tests"), store=folder)
        yield registered.uri


def plan_on(device_of: dict[str, str], model_uri: str) -> CapacityPlan:
    """One variant, or two that share the busiest interval (as in tests/test_capacity_plan.py):
    a slow accurate one and a fast less accurate one, under a nearly steady load."""
    shapes = [(0.95, 4, 100.0, 0.040), (0.90, 16, 400.0, 0.030)]
    options = tuple(
        VariantOption(name, *shape, model_uri, device)
        for (name, device), shape in zip(device_of.items(), shapes, strict=False)
    )
    return build_plan(
        [820.0, 850.0, 860.0, 840.0],  # steady: a fixed mix of the two is worth deploying
        0,
        Optimizer(options),
        slo_ms=100.0,
        interval_s=600,
        cold_start_s=30.0,
        price_per_replica_hour=1.0,
        forecast={"method": "given"},
    )


def test_the_profile_device_reaches_the_plan_and_its_file(tmp_path: Path) -> None:
    profile = synthetic_profile("models:/m/1")
    profile = replace(profile, measured={"devices": {"small": H200, "large": "cpu"}})
    options = {o.name: o for o in options_for(profile, 150.0)}
    assert (options["small"].device, options["large"].device) == (H200, "cpu")

    plan = build_plan(
        [400.0, 900.0],
        0,
        Optimizer(tuple(options.values())),
        slo_ms=150.0,
        interval_s=600,
        cold_start_s=30.0,
        price_per_replica_hour=1.0,
        forecast={"method": "given"},
    )
    again = read_plan(write_plan(tmp_path / "plan.json", plan))
    assert {s.variant: s.device for s in again.serving} == {s.variant: s.device for s in plan.serving}
    assert {o.name: o.device for o in again.options} == {"small": H200, "large": "cpu"}
    # a profile that names no device (made before devices were recorded) is a CPU's
    assert {o.device for o in options_for(synthetic_profile(), 150.0)} == {"cpu"}


def test_a_plan_written_before_devices_reads_as_cpu(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "plan.json", plan_on({"mlp": "cpu"}, "models:/m/1"))
    data = json.loads(path.read_text(encoding="utf-8"))
    for entry in [*data["variants"], *data["kserve"]]:
        del entry["device"]
    path.write_text(json.dumps(data), encoding="utf-8")
    (serving,) = read_plan(path).serving
    assert serving.device == "cpu"


def gpu_limits(resource: dict) -> dict[str, str]:
    limits = resource["spec"]["predictor"]["model"].get("resources", {}).get("limits", {})
    return {name: value for name, value in limits.items() if "gpu" in name}


@pytest.mark.slow
def test_a_variant_measured_on_a_gpu_deploys_with_one(torch_model_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    planned = render_plan(plan_on({"mlp": H200}, torch_model_uri), "digits", DeploySettings())
    (resource,) = planned.resources
    validate_resource(resource)
    assert gpu_limits(resource) == {"nvidia.com/gpu": "1"}
    (line,) = [b for b in planned.behaviour if "measured on" in b]
    assert H200 in line and "NVIDIA H200" in line and "--gpu-type" in line
    assert not any("GPU" in w for w in planned.warnings)

    # the user's own GPU count stands
    planned = render_plan(plan_on({"mlp": H200}, torch_model_uri), "digits", DeploySettings(gpu=2))
    assert gpu_limits(planned.resources[0]) == {"nvidia.com/gpu": "2"}
    assert not any("measured on" in b for b in planned.behaviour)


@pytest.mark.slow
def test_a_gpu_asked_for_a_variant_measured_on_cpu_is_warned_about(torch_model_uri: str) -> None:
    planned = render_plan(plan_on({"mlp": "cpu"}, torch_model_uri), "digits", DeploySettings(gpu=1))
    assert gpu_limits(planned.resources[0]) == {"nvidia.com/gpu": "1"}
    (warning,) = [w for w in planned.warnings if "measured on cpu" in w]
    assert "'mlp'" in warning and "nb2pipe profile" in warning
    # and a CPU plan deployed without GPUs asks for none
    planned = render_plan(plan_on({"mlp": "cpu"}, torch_model_uri), "digits", DeploySettings())
    assert gpu_limits(planned.resources[0]) == {}
    assert not any("measured on" in text for text in [*planned.warnings, *planned.behaviour])


@pytest.mark.slow
def test_each_variant_of_a_mixed_plan_gets_its_own_device(torch_model_uri: str) -> None:
    planned = render_plan(plan_on({"gpu": H200, "cpu": "cpu"}, torch_model_uri), "digits", DeploySettings())
    services = {r["metadata"]["name"]: r for r in planned.resources if r["kind"] == "InferenceService"}
    assert set(services) == {"digits-gpu", "digits-cpu"}
    assert gpu_limits(services["digits-gpu"]) == {"nvidia.com/gpu": "1"}
    assert gpu_limits(services["digits-cpu"]) == {}
    assert any(b.startswith("digits-gpu: 1 GPU per replica") for b in planned.behaviour)


@pytest.mark.slow
def test_cli_deploy_plan_says_why_it_asks_for_a_gpu(
    torch_model_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_path = write_plan(tmp_path / "plan.json", plan_on({"mlp": H200}, torch_model_uri))
    out = tmp_path / "isvc.yaml"
    argv = ["deploy", "--name", "digits", "--plan", str(plan_path), "--dry-run", "-o", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"measured on {H200}" in captured.err
    (resource,) = list(yaml.safe_load_all(out.read_text(encoding="utf-8")))
    assert gpu_limits(resource) == {"nvidia.com/gpu": "1"}
