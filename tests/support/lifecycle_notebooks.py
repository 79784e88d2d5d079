"""A small iris notebook (load, train, evaluate, metrics) for the register:/promote:/deploy: tests:
the lifecycle tags under test go on its train cell or on a serving cell of their own."""

from __future__ import annotations

from typing import Any

from tests.support.nbtools import code, notebook

LOAD = (
    "from sklearn.datasets import load_iris\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "X, y = load_iris(return_X_y=True, as_frame=True)"
)
TRAIN = "model = LogisticRegression(max_iter=200)\nmodel.fit(X, y)"


def lifecycle_notebook(*train_tags: str, deploy_tags: tuple[str, ...] = (), train: str = TRAIN) -> dict[str, Any]:
    cells = [code(LOAD, "step:load"), code(train, "step:train", *train_tags)]
    if deploy_tags:
        cells.append(code("# serving", *deploy_tags))
    cells.append(code("accuracy = model.score(X, y)\nprint(accuracy)", "step:evaluate"))
    cells.append(code("accuracy", "metrics"))
    return notebook(*cells)
