"""Artifact types follow the library that made a value, never the variable's name."""

from __future__ import annotations

from tests.support.nbtools import code, notebook, plan_of


def kinds(step_code: str, prelude: str = "") -> dict[str, str]:
    """Artifact types of the values one step makes, all read by a later step."""
    cells = [code(prelude, "imports")] if prelude else []
    targets = [line.split("=")[0] for line in step_code.splitlines() if "=" in line and not line.startswith(" ")]
    names = [name.strip() for target in targets for name in target.split(",")]
    reader = code("print(" + ", ".join(names) + ")", "step:use")
    plan = plan_of(notebook(*cells, code(step_code, "step:make"), reader))
    return {o.name: o.kind for o in plan.step("make").outputs}


def test_dataframes_arrays_and_splits_are_datasets():
    found = kinds(
        "frame = pd.read_csv('x.csv')\narr = np.zeros(3)\nXa, Xb, ya, yb = train_test_split(frame, arr)\n"
        "subset = frame[['a']]\ncleaned = frame.dropna()",
        "import numpy as np\nimport pandas as pd\nfrom sklearn.model_selection import train_test_split",
    )
    assert found == {
        "frame": "Dataset",
        "arr": "Dataset",
        "Xa": "Dataset",
        "Xb": "Dataset",
        "ya": "Dataset",
        "yb": "Dataset",
        "subset": "Dataset",
        "cleaned": "Dataset",
    }


def test_estimators_are_models_whatever_they_are_called():
    found = kinds(
        "df = RandomForestClassifier()\nmodel = np.zeros(2)\npipe = make_pipeline(StandardScaler())\n"
        "fitted = pipe.fit([[0]], [0])\npredicted = pipe.predict([[0]])",
        "import numpy as np\nfrom sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler",
    )
    assert found == {"df": "Model", "model": "Dataset", "pipe": "Model", "fitted": "Model", "predicted": "Dataset"}


def test_plain_values_are_artifacts():
    found = kinds("score = 0.5\nnames = ['a']\nmean_value = np.mean([1, 2])", "import numpy as np")
    assert found == {"score": "Artifact", "names": "Artifact", "mean_value": "Artifact"}


def test_keras_models_are_models():
    found = kinds(
        "net = keras.Sequential()\nnet2 = tf.keras.models.Sequential()", "import keras\nimport tensorflow as tf"
    )
    assert found == {"net": "Model", "net2": "Model"}


def test_keras_layers_and_optimizers_are_parts_not_models():
    found = kinds(
        "vectorize = keras.layers.TextVectorization()\nstep = tf.keras.optimizers.Adam()\nnet = keras.Model()",
        "import keras\nimport tensorflow as tf",
    )
    assert found == {"vectorize": "Artifact", "step": "Artifact", "net": "Model"}


def test_torch_modules_are_models_and_tensors_datasets():
    found = kinds(
        "net = nn.Linear(2, 1)\nx = torch.zeros(2)\ny = net(x)\nloss_fn = nn.MSELoss()\nseen = torch.load('w.pt')",
        "import torch\nfrom torch import nn",
    )
    assert found == {"net": "Model", "x": "Dataset", "y": "Dataset", "loss_fn": "Artifact", "seen": "Artifact"}
