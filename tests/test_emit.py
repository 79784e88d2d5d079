"""Compiled IR: valid PipelineSpec, the expected DAG, step settings, determinism."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kfp.pipeline_spec import pipeline_spec_pb2

from nb2pipe.compiler import compile_notebook, compile_source, environment_packaging
from tests.support.kfpspec import dag, executor_config, parse_ir
from tests.support.nbtools import EXAMPLES, code, notebook, notebook_text, write_notebook

EXPECTED_DAGS = {
    "parameters_metrics": {"generate": [], "fit": ["generate"]},
    "fan_out": {
        "prepare": [],
        "logistic": ["prepare"],
        "forest": ["prepare"],
        "neighbours": ["prepare"],
        "compare": ["forest", "logistic", "neighbours"],
    },
    "sklearn_train": {
        "load-data": [],
        "preprocess": ["load-data"],
        "train": ["preprocess"],
        "evaluate": ["preprocess", "train"],
    },
}


@pytest.mark.parametrize("example", sorted(EXPECTED_DAGS))
def test_examples_compile_to_the_expected_dag(example: str):
    compiled = compile_source((EXAMPLES / f"{example}.ipynb").read_text(), f"{example}.ipynb")
    spec, _ = parse_ir(compiled.yaml)
    assert dag(spec) == EXPECTED_DAGS[example]


def test_every_example_parses_as_pipeline_spec():
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        spec, _ = parse_ir(compile_source(path.read_text(), path.name).yaml)
        assert spec.pipeline_info.name
        assert spec.root.dag.tasks, path.name


def test_parameters_become_typed_pipeline_inputs_with_defaults():
    spec, _ = parse_ir(compile_source((EXAMPLES / "parameters_metrics.ipynb").read_text(), "p.ipynb").yaml)
    parameters = spec.root.input_definitions.parameters
    enum = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
    types = {name: enum.Name(p.parameter_type) for name, p in parameters.items()}
    assert types == {
        "n_samples": "NUMBER_INTEGER",
        "noise": "NUMBER_DOUBLE",
        "seed": "NUMBER_INTEGER",
        "label": "STRING",
        "fit_intercept": "BOOLEAN",
        "coefficients": "LIST",
        "options": "STRUCT",
    }
    assert parameters["coefficients"].default_value.list_value.values[0].number_value == 2.0
    fit = spec.root.dag.tasks["fit"]
    assert fit.inputs.parameters["n_samples"].component_input_parameter == "n_samples"
    assert fit.inputs.artifacts["X"].task_output_artifact.producer_task == "generate"


def test_artifact_types_and_metrics_output():
    spec, _ = parse_ir(compile_source((EXAMPLES / "sklearn_train.ipynb").read_text(), "s.ipynb").yaml)
    train = spec.components["comp-train"]
    assert train.output_definitions.artifacts["model"].artifact_type.schema_title == "system.Model"
    preprocess = spec.components["comp-preprocess"]
    assert preprocess.output_definitions.artifacts["X_train"].artifact_type.schema_title == "system.Dataset"
    evaluate = spec.components["comp-evaluate"]
    assert evaluate.output_definitions.artifacts["nb2pipe_metrics"].artifact_type.schema_title == "system.Metrics"


def test_step_settings_reach_the_ir():
    nb = notebook(
        code(
            "x = 1",
            "step:train",
            "gpu:1",
            "cpu:2",
            "memory:4Gi",
            "limit:cpu:4",
            "limit:memory:8Gi",
            "image:python:3.12-slim",
            "cache:off",
            "retry:3",
            "timeout:600",
            "annotation:example.com/a:b",
            "label:team:ml",
            "secret:creds:token:API_TOKEN",
            "packages:tabulate==0.9.0",
        ),
    )
    spec, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    container = spec.deployment_spec.fields["executors"].struct_value.fields["exec-train"].struct_value
    container = container.fields["container"].struct_value.fields
    assert container["image"].string_value == "python:3.12-slim"
    resources = container["resources"].struct_value.fields
    assert resources["cpuRequest"].number_value == 2 and resources["cpuLimit"].number_value == 4
    assert resources["resourceMemoryRequest"].string_value == "4Gi"
    assert resources["resourceMemoryLimit"].string_value == "8Gi"
    accelerator = resources["accelerator"].struct_value.fields
    assert accelerator["resourceType"].string_value == "nvidia.com/gpu"
    assert accelerator["resourceCount"].string_value == "1"
    assert "tabulate==0.9.0" in container["command"].list_value.values[2].string_value
    task = spec.root.dag.tasks["train"]
    assert task.caching_options.enable_cache is False
    assert task.retry_policy.max_retry_count == 3
    config = executor_config(platform, "train")
    assert config["activeDeadlineSeconds"] == "600"
    assert config["podMetadata"] == {"annotations": {"example.com/a": "b"}, "labels": {"team": "ml"}}
    assert config["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "token", "envVar": "API_TOKEN"}]
    # GPU node pools' taint is tolerated, as Kubernetes' ExtendedResourceToleration admission would
    assert config["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "nodeSelector" not in config


@pytest.mark.parametrize(
    ("tag", "resource", "selector", "tolerated"),
    [
        # a product as nvidia-smi prints it: nvidia.com/gpu on nodes GPU Feature Discovery labels with it
        ("gpu:1:NVIDIA H100 80GB HBM3", "nvidia.com/gpu", "NVIDIA-H100-80GB-HBM3", ["nvidia.com/gpu"]),
        ("gpu:2:NVIDIA-H200", "nvidia.com/gpu", "NVIDIA-H200", ["nvidia.com/gpu"]),
        # a MIG slice (mixed strategy) is a resource of its own, on nodes tainted nvidia.com/gpu
        ("gpu:1:nvidia.com/mig-1g.18gb", "nvidia.com/mig-1g.18gb", None, ["nvidia.com/mig-1g.18gb", "nvidia.com/gpu"]),
        ("gpu:1:amd.com/gpu", "amd.com/gpu", None, ["amd.com/gpu"]),
    ],
)
def test_a_steps_gpu_type_places_its_pod(tag: str, resource: str, selector: str | None, tolerated: list[str]):
    nb = notebook(code("x = 1", "step:train", tag))
    spec, platform = parse_ir(compile_source(notebook_text(nb), "nb.ipynb").yaml)
    container = spec.deployment_spec.fields["executors"].struct_value.fields["exec-train"].struct_value
    accelerator = container.fields["container"].struct_value.fields["resources"].struct_value.fields["accelerator"]
    assert accelerator.struct_value.fields["resourceType"].string_value == resource
    config = executor_config(platform, "train")
    assert config.get("nodeSelector") == ({"labels": {"nvidia.com/gpu.product": selector}} if selector else None)
    assert [t["key"] for t in config["tolerations"]] == tolerated


@pytest.mark.parametrize(
    ("tag", "says"),
    [
        ("gpu:1:H100/80GB", "not an extended resource name"),
        ("gpu:1:kubernetes.io/gpu", "not an extended resource name"),
        ("gpu:1:NVIDIA-H100-" + "X" * 60, "not a node label value"),
        ("limit:Nvidia.com/gpu:1", "not an extended resource name"),
    ],
)
def test_a_gpu_type_kubernetes_would_refuse_is_a_diagnostic(tag: str, says: str):
    from nb2pipe.errors import CompileError

    nb = notebook(code("x = 1", "step:train", tag))
    with pytest.raises(CompileError) as raised:
        compile_source(notebook_text(nb), "nb.ipynb")
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.code == "bad-tag" and says in diagnostic.message
    assert "nb.ipynb" in diagnostic.format() and "cell 1" in diagnostic.format()


def test_output_is_byte_identical_across_processes(tmp_path: Path):
    source = EXAMPLES / "fan_out.ipynb"
    outputs = []
    for run in ("a", "b"):
        target = tmp_path / f"{run}.yaml"
        subprocess.run(
            [sys.executable, "-m", "nb2pipe", "compile", str(source), "-o", str(target)],
            check=True,
            capture_output=True,
        )
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]
    in_process = compile_source(source.read_text(), str(source), packaging=environment_packaging())
    assert in_process.yaml.encode() == outputs[0]


def test_default_output_path_and_dsl_file_compiles_to_the_same_dag(tmp_path: Path):
    notebook_path = tmp_path / "fan_out.ipynb"
    notebook_path.write_text((EXAMPLES / "fan_out.ipynb").read_text())
    result = compile_notebook(notebook_path, dsl=tmp_path / "fan_out_dsl.py")
    assert result.output == tmp_path / "fan_out.pipeline.yaml"
    ours = dag(parse_ir(result.output.read_text())[0])
    # Compile the readable DSL with kfp in a separate interpreter, as a user would.
    scratch = tmp_path / "dsl"
    scratch.mkdir()
    subprocess.run([sys.executable, str(tmp_path / "fan_out_dsl.py")], cwd=scratch, check=True, capture_output=True)
    theirs = dag(parse_ir((scratch / "fan_out.pipeline.yaml").read_text())[0])
    assert theirs == ours


def test_step_names_with_keywords_and_hyphens_become_valid_functions(tmp_path: Path):
    nb = notebook(code("x = 1", "step:class"), code("y = x", "step:load-data"), code("z = y", "step:run_step"))
    path = write_notebook(tmp_path, nb)
    result = compile_notebook(path)
    spec, _ = parse_ir(result.output.read_text())
    assert dag(spec) == {"class": [], "load-data": ["class"], "run-step": ["load-data"]}
    text = result.output.read_text()
    assert "--function_to_execute" in text and "class_step" in text and "run_step_step" in text


def test_the_embedded_runtime_needs_no_nb2pipe(tmp_path):
    import subprocess
    import sys

    from nb2pipe.emit.step_source import runtime_source

    script = tmp_path / "check.py"
    script.write_text(
        runtime_source() + "\nimport sys\nassert 'nb2pipe' not in sys.modules\n"
        "save_value([1], sys.argv[1]); print(load_value(sys.argv[1]))\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-S", str(script), str(tmp_path / "v")], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[1]"


def test_dsl_function_names_are_distinct_and_leave_the_files_own_names_alone(tmp_path: Path):
    nb = notebook(
        code("n = 2", "parameters"),
        code("x = n", "step:a-b"),
        code("y = x + 1", "step:a_b"),
        code("z = y + 1", "step:kubernetes"),
        code("w = z + 1", "step:dsl"),
        code("v = w + 1", "step:n_task"),
    )
    path = write_notebook(tmp_path, nb)
    result = compile_notebook(path, dsl=tmp_path / "nb_dsl.py")
    ours = dag(parse_ir(result.output.read_text())[0])
    scratch = tmp_path / "dsl"
    scratch.mkdir()
    subprocess.run([sys.executable, str(tmp_path / "nb_dsl.py")], cwd=scratch, check=True, capture_output=True)
    theirs = dag(parse_ir((scratch / result.output.name).read_text())[0])
    # the same chain of five tasks (kfp names the file's tasks after its functions)
    assert len(theirs) == len(ours) == 5
    assert sorted(len(parents) for parents in theirs.values()) == [0, 1, 1, 1, 1]
