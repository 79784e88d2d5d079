"""Scheduling tags (toleration:, node:, affinity:, prefer-affinity:, shm:, env:): the grammar, the
merge over steps_defaults, the compiled IR's executor config, the DSL file, and a local run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nb2pipe.compiler import compile_notebook, compile_source
from nb2pipe.errors import Diagnostic, Location
from nb2pipe.ir import NodeAffinityRule, SecretEnv, StepOptions, Toleration
from nb2pipe.notebook.pipeline_settings import step_options
from nb2pipe.notebook.scheduling import RUNNER_ENV
from nb2pipe.notebook.tags import TagProblem, parse_tag
from tests.support.kfpspec import container_env, executor_config, parse_ir
from tests.support.nbtools import code, codes, diagnostics_of, notebook, notebook_text, plan_of, write_notebook

#: every scheduling tag once, and a GPU whose node label a node: tag also names
ALL_TAGS = (
    "toleration:dedicated=ml:NoSchedule",
    "toleration:spot:NoExecute",
    "node:cloud.google.com/gke-nodepool=train",
    "affinity:topology.kubernetes.io/zone=eu-1a|eu-1b",
    "affinity:!example.com/preemptible",
    "prefer-affinity:example.com/disk=ssd:30",
    "shm:2Gi",
    "env:SERVICE_URL=http://svc:8080/x?a=b",
    "env:OMP_NUM_THREADS=4",
)


def _tag(text: str) -> Any:
    result = parse_tag(text)
    assert not isinstance(result, TagProblem), result
    return result


@pytest.mark.parametrize(
    ("text", "kind", "args"),
    [
        ("toleration:dedicated=ml:NoSchedule", "toleration", ("dedicated=ml", "NoSchedule")),
        ("toleration:nvidia.com/gpu:NoExecute", "toleration", ("nvidia.com/gpu", "NoExecute")),
        ("toleration:spot=:PreferNoSchedule", "toleration", ("spot=", "PreferNoSchedule")),
        ("node:kubernetes.io/arch=arm64", "node", ("kubernetes.io/arch=arm64",)),
        ("node:pool=", "node", ("pool=",)),
        ("affinity:zone=a|b", "affinity", ("zone=a|b",)),
        ("affinity:zone!=c", "affinity", ("zone!=c",)),
        ("affinity:example.com/gpu", "affinity", ("example.com/gpu",)),
        ("affinity:!spot", "affinity", ("!spot",)),
        ("affinity:gpu-memory>40000", "affinity", ("gpu-memory>40000",)),
        ("affinity:cores<-1", "affinity", ("cores<-1",)),
        ("prefer-affinity:disk=ssd", "prefer-affinity", ("disk=ssd",)),
        ("prefer-affinity:disk=ssd:100", "prefer-affinity", ("disk=ssd", "100")),
        ("shm:1Gi", "shm", ("1Gi",)),
        ("shm:512M", "shm", ("512M",)),
        ("env:URL=http://x:1", "env", ("URL=http://x:1",)),
        ("env:EMPTY=", "env", ("EMPTY=",)),
        ("env:a.b-c=x=y:z", "env", ("a.b-c=x=y:z",)),
    ],
)
def test_scheduling_tags_parse(text: str, kind: str, args: tuple[str, ...]):
    tag = _tag(text)
    assert (tag.kind, tag.args, tag.text) == (kind, args, text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("toleration:dedicated=ml", "wrong number of fields"),
        ("toleration::NoSchedule", "taint key is empty"),
        ("toleration:bad key:NoSchedule", "must be ASCII letters"),
        ("toleration:k=" + "v" * 64 + ":NoSchedule", "taint value has more than 63"),
        ("toleration:k:noschedule", "did you mean 'NoSchedule'?"),
        ("toleration:k:NoSchedul", "did you mean 'NoSchedule'?"),
        ("toleration:k:Never", "is not a taint effect"),
        ("node:pool", "write the node label as KEY=VALUE"),
        ("node:=gpu", "label key is empty"),
        ("node:Example.com/pool=gpu", "key's prefix must be lowercase"),
        ("node:pool=" + "x" * 64, "label value has more than 63"),
        ("node:pool=a b", "label value must be ASCII"),
        ("affinity:", "label key is empty"),
        ("affinity:zone=", "empty value"),
        ("affinity:zone=a||b", "empty value"),
        ("affinity:zone>a", "Gt compares the label with one whole number"),
        ("affinity:zone<1|2", "Lt compares the label with one whole number"),
        ("affinity:zone=a:b", "wrong number of fields"),
        ("affinity:=a", "label key is empty"),
        ("prefer-affinity:disk=ssd:0", "weight '0' must be a whole number from 1 to 100"),
        ("prefer-affinity:disk=ssd:101", "from 1 to 100"),
        ("prefer-affinity:disk=ssd:high", "from 1 to 100"),
        ("shm:lots", "is not a memory quantity"),
        ("shm:0Gi", "must be above zero"),
        ("shm:1Gi:2", "wrong number of fields"),
        ("env:NAME", "write the variable as NAME=VALUE"),
        ("env:=value", "is not an environment variable name"),
        ("env:1ST=x", "is not an environment variable name"),
        ("env:A B=x", "is not an environment variable name"),
        ("env:NB2PIPE_STORE=/tmp", "set by nb2pipe's runner"),
        ("env:NB2PIPE_RUNNER_PID=1", "set by nb2pipe's runner"),
    ],
)
def test_bad_scheduling_tags_say_what_is_wrong_and_how_to_write_them(text: str, says: str):
    problem = parse_tag(text)
    assert isinstance(problem, TagProblem) and problem.code == "bad-tag"
    assert says in problem.message
    assert text[:30] in problem.message and problem.hint.startswith("write it as '" + text.split(":")[0])


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("tolerations:k:NoSchedule", "toleration:k:NoSchedule"),
        ("tolerate:k:NoSchedule", "toleration:k:NoSchedule"),
        ("node-selector:pool=gpu", "node:pool=gpu"),
        ("nodeSelector:pool=gpu", "node:pool=gpu"),
        ("affinty:zone=a", "affinity:zone=a"),
        ("node-affinity:zone=a", "affinity:zone=a"),
        ("prefer-afinity:zone=a", "prefer-affinity:zone=a"),
        ("shm-size:1Gi", "shm:1Gi"),
        ("environment:A=1", "env:A=1"),
        ("envs:A=1", "env:A=1"),
    ],
)
def test_misspelled_scheduling_kinds_get_did_you_mean(text: str, meant: str):
    problem = parse_tag(text)
    assert isinstance(problem, TagProblem) and problem.code == "unknown-tag"
    assert problem.hint == f"did you mean {meant!r}?"


def test_the_runner_variables_refused_are_those_the_local_runner_sets():
    from nb2pipe.store.data import WAIT_FOR_INPUTS_ENV
    from nb2pipe.store.registry import STORE_ENV

    source = (Path(__file__).resolve().parents[1] / "nb2pipe" / "runners" / "local.py").read_text()
    set_by_runner = {name for name in RUNNER_ENV if f'"{name}"' in source}
    assert {WAIT_FOR_INPUTS_ENV, STORE_ENV} <= RUNNER_ENV
    assert set_by_runner | {WAIT_FOR_INPUTS_ENV} == RUNNER_ENV


def test_later_tags_win_per_key_over_the_defaults():
    defaults = step_options(
        [
            _tag(t)
            for t in (
                "toleration:dedicated=ml:NoSchedule",
                "toleration:dedicated:NoExecute",
                "node:pool=cpu",
                "node:arch=amd64",
                "affinity:zone=a",
                "prefer-affinity:disk=ssd:10",
                "shm:1Gi",
                "env:MODE=default",
                "env:KEEP=1",
                "secret:creds:token:TOKEN",
            )
        ],
        StepOptions(),
    )
    step = step_options(
        [
            _tag(t)
            for t in (
                "toleration:dedicated=gpu:NoSchedule",
                "node:pool=gpu",
                "affinity:zone=b|c",
                "prefer-affinity:disk=nvme",
                "shm:4Gi",
                "env:MODE=step",
                "env:TOKEN=plain",
                "secret:other:key:KEEP",
                "env:MODE=last",
            )
        ],
        defaults,
    )
    assert step.tolerations == (
        Toleration("dedicated", "Exists", "NoExecute"),
        Toleration("dedicated", "Equal", "NoSchedule", "gpu"),
    )
    assert step.node_selector == (("arch", "amd64"), ("pool", "gpu"))
    assert step.node_affinity == (
        NodeAffinityRule("zone", "In", ("b", "c")),
        NodeAffinityRule("disk", "In", ("nvme",), weight=1),
    )
    assert step.shm_size == "4Gi"
    # a variable has one value, the later tag's, whether env: or secret: set it
    assert step.env == (("MODE", "last"), ("TOKEN", "plain"))
    assert step.secrets == (SecretEnv(env="KEEP", secret="other", key="key"),)
    assert defaults.env == (("KEEP", "1"), ("MODE", "default"))


def test_a_node_tag_on_the_gpu_product_label_wins_and_a_different_product_is_a_warning():
    diagnostics: list[Diagnostic] = []
    where = Location("nb.ipynb")
    same = step_options(
        [_tag("gpu:1:NVIDIA H100 80GB HBM3"), _tag("node:nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3")],
        StepOptions(),
        diagnostics,
        where,
    )
    assert diagnostics == []
    other = step_options(
        [_tag("gpu:1:NVIDIA-H100"), _tag("node:nvidia.com/gpu.product=NVIDIA-A100")], StepOptions(), diagnostics, where
    )
    (warned,) = diagnostics
    assert warned.code == "conflicting-tags" and warned.severity.value == "warning"
    assert "'NVIDIA-H100'" in warned.message and "runs on NVIDIA-A100 nodes" in warned.message
    # a step merged over defaults that already conflict is not reported again
    step_options([_tag("env:A=1")], other, diagnostics, where)
    assert len(diagnostics) == 1
    assert same.node_selector == (("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),)


@pytest.mark.parametrize("product", ["NVIDIA-H100", "NVIDIA-A100"])
def test_the_compiled_step_has_one_gpu_product_selector_the_node_tags(product: str):
    # the GPU taint's toleration, written out as well, is not added twice
    tags = ("gpu:1:NVIDIA H100", f"node:nvidia.com/gpu.product={product}", "toleration:nvidia.com/gpu:NoSchedule")
    nb = notebook(code("x = 1", "step:train", *tags))
    _, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    config = executor_config(platform, "train")
    assert config["nodeSelector"] == {"labels": {"nvidia.com/gpu.product": product}}
    assert config["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_a_conflicting_gpu_product_in_steps_defaults_is_a_compile_warning():
    nb = notebook(
        code("x = 1", "step:train"),
        metadata={"nb2pipe": {"steps_defaults": ["gpu:1:NVIDIA-H100", "node:nvidia.com/gpu.product=NVIDIA-A100"]}},
    )
    plan = plan_of(nb)
    assert codes(plan.warnings) == ["conflicting-tags"]


def test_compiled_ir_carries_every_scheduling_tag():
    nb = notebook(code("x = 1", "step:train", *ALL_TAGS, "gpu:1:NVIDIA-H100"), code("y = x", "step:report"))
    spec, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    config = executor_config(platform, "train")
    assert config["nodeSelector"] == {
        "labels": {"cloud.google.com/gke-nodepool": "train", "nvidia.com/gpu.product": "NVIDIA-H100"}
    }
    assert config["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute"},
    ]
    # the required expressions are one term (all must hold); each preferred one a weighted term
    assert config["nodeAffinity"] == [
        {
            "matchExpressions": [
                {"key": "example.com/preemptible", "operator": "DoesNotExist"},
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-1a", "eu-1b"]},
            ]
        },
        {"matchExpressions": [{"key": "example.com/disk", "operator": "In", "values": ["ssd"]}], "weight": 30},
    ]
    assert config["emptyDirMounts"] == [
        {"volumeName": "nb2pipe-shm", "mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": "2Gi"}
    ]
    assert container_env(spec, "train") == {"OMP_NUM_THREADS": "4", "SERVICE_URL": "http://svc:8080/x?a=b"}
    assert executor_config(platform, "report") == {} and container_env(spec, "report") == {}


def test_steps_defaults_list_form_applies_under_a_steps_own_tags():
    defaults = ["toleration:dedicated=ml:NoSchedule", "node:pool=cpu", "shm:1Gi", "env:MODE=default"]
    nb = notebook(
        code("x = 1", "step:first"),
        code("y = x", "step:second", "node:pool=gpu", "env:MODE=second", "shm:8Gi"),
        metadata={"nb2pipe": {"steps_defaults": defaults}},
    )
    spec, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    first, second = executor_config(platform, "first"), executor_config(platform, "second")
    toleration = [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    assert first["tolerations"] == second["tolerations"] == toleration
    assert first["nodeSelector"] == {"labels": {"pool": "cpu"}}
    assert second["nodeSelector"] == {"labels": {"pool": "gpu"}}
    assert [m["sizeLimit"] for m in first["emptyDirMounts"] + second["emptyDirMounts"]] == ["1Gi", "8Gi"]
    assert container_env(spec, "first") == {"MODE": "default"} and container_env(spec, "second") == {"MODE": "second"}


def test_kales_parsed_steps_defaults_merge_with_scheduling_tags_and_have_no_scheduling_keys():
    # Kale's dict form holds labels, annotations and limits only: a step's scheduling tags add to them
    kale = {"labels": {"team": "ml"}, "limits": {"memory": "4Gi"}}
    nb = notebook(
        code("x = 1", "step:train", "toleration:spot:NoSchedule", "env:A=1"),
        metadata={"kubeflow_notebook": {"steps_defaults": kale}},
    )
    spec, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    config = executor_config(platform, "train")
    assert config["podMetadata"] == {"labels": {"team": "ml"}}
    assert config["tolerations"] == [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]
    assert container_env(spec, "train") == {"A": "1"}
    # a key Kale does not have is not guessed at: the list form is the way to write it
    bad = notebook(code("x = 1"), metadata={"kubeflow_notebook": {"steps_defaults": {"tolerations": ["spot"]}}})
    (diagnostic,) = diagnostics_of(bad)
    assert "steps_defaults" in diagnostic.message and "a list of tags" in diagnostic.message


def test_a_bad_scheduling_tag_in_steps_defaults_is_reported():
    nb = notebook(code("x = 1"), metadata={"nb2pipe": {"steps_defaults": ["env:NB2PIPE_STORE=/x", "node:pool"]}})
    messages = [d.message for d in diagnostics_of(nb)]
    assert len(messages) == 2 and all(m.startswith("steps_defaults: tag") for m in messages)


def test_the_dsl_file_applies_the_same_scheduling(tmp_path: Path):
    nb = notebook(code("x = 1", "step:train", *ALL_TAGS, "gpu:1:NVIDIA-H100"), code("y = x", "step:report"))
    path = write_notebook(tmp_path, nb)
    result = compile_notebook(path, dsl=tmp_path / "nb_dsl.py")
    ours_spec, ours = parse_ir(result.output.read_text())
    scratch = tmp_path / "dsl"
    scratch.mkdir()
    subprocess.run([sys.executable, str(tmp_path / "nb_dsl.py")], cwd=scratch, check=True, capture_output=True)
    theirs_spec, theirs = parse_ir((scratch / result.output.name).read_text())
    for task in ("train", "report"):
        assert executor_config(theirs, task) == executor_config(ours, task)
        assert container_env(theirs_spec, task) == container_env(ours_spec, task)
    assert executor_config(ours, "train")["emptyDirMounts"]


def test_a_pipeline_with_every_scheduling_tag_runs_locally(tmp_path: Path):
    from nb2pipe.runners.local import run_notebook
    from nb2pipe.runners.run_folder import load_variables

    nb = notebook(
        code("import os", "imports"),
        code(
            "url = os.environ['SERVICE_URL']\nthreads = int(os.environ['OMP_NUM_THREADS'])\n"
            "runner_vars = sorted(k for k in os.environ if k.startswith('NB2PIPE_'))",
            "step:first",
            *ALL_TAGS,
        ),
        code("mode = os.environ['MODE']\ntotal = threads + 1", "step:second"),
        metadata={"nb2pipe": {"steps_defaults": ["env:MODE=default", "toleration:spot:NoSchedule"]}},
    )
    result = run_notebook(write_notebook(tmp_path, nb), workdir=tmp_path / "work", keep_variables=True)
    assert result.status == "succeeded", result.failures
    values = load_variables(result.run_dir)
    assert values["url"] == "http://svc:8080/x?a=b" and values["threads"] == 4
    assert values["mode"] == "default" and values["total"] == 5
    # every NB2PIPE_ variable the runner gave the step is one env: refuses
    assert set(values["runner_vars"]) <= RUNNER_ENV and "NB2PIPE_STORE" in values["runner_vars"]


def test_odd_values_are_refused_or_compile():
    """Whatever a scheduling tag accepts, kfp-kubernetes takes too (it checks operators and weights)."""
    from tests.support.mutation_values import WEIRD_VALUES

    accepted = []
    for kind in ("toleration", "node", "affinity", "prefer-affinity", "shm", "env"):
        for value in (*WEIRD_VALUES, "k=v", "k:NoSchedule", "k=v:NoExecute", "k!=v", "!k", "k>1", "k=a|b:100"):
            result = parse_tag(f"{kind}:{value}")
            if isinstance(result, TagProblem):
                assert result.message and result.hint
            else:
                accepted.append(result.text)
    assert len(accepted) >= 12
    nb = notebook(code("x = 1", "step:train", *accepted))
    _, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    assert executor_config(platform, "train")
