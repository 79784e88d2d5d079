"""Writes examples/lifecycle.ipynb (run: python examples/tools/make_lifecycle.py).

Cell ids are fixed so the file, and the golden pipeline compiled from it, are stable.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("markdown", [], "# Breast-cancer classifier: train, register in MLflow, serve with KServe\n\n"
     "`nb2pipe run lifecycle.ipynb` trains, registers `cancer-classifier` (champion when its accuracy "
     "is at least the champion's) and serves the champion on a local KServe endpoint."),
    ("code", ["imports"], "from sklearn.datasets import load_breast_cancer\n"
     "from sklearn.linear_model import LogisticRegression\n"
     "from sklearn.model_selection import train_test_split\n"
     "from sklearn.pipeline import make_pipeline\n"
     "from sklearn.preprocessing import StandardScaler"),
    ("code", ["parameters"], "C = 1.0\nseed = 7"),
    ("code", ["step:load"], "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n"
     "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed)"),
    ("code", ["step:train", "register:cancer-classifier", "promote:accuracy>="],
     "model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))\n"
     "model.fit(X_train, y_train)"),
    ("code", ["deploy:cancer", "replicas:0-3", "scale:concurrency=8", "canary:20", "monitor"],
     "print(f\"trained on {len(X_train)} rows\")"),
    ("code", ["step:evaluate"], "accuracy = model.score(X_test, y_test)\nprint(f\"accuracy {accuracy:.3f}\")"),
    ("code", ["metrics"], "accuracy"),
]


def main() -> None:
    notebook = new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for index, (kind, tags, source) in enumerate(CELLS):
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        cell.id = f"cell-{index:02d}"
        cell.metadata = {"tags": tags} if tags else {}
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    target = Path(__file__).resolve().parents[1] / "lifecycle.ipynb"
    target.write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
