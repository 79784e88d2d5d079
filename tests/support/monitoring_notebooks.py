"""Cells of a tiny tabular notebook (a DataFrame, a logistic regression, new rows to check for
drift) for the tests of the tasks nb2pipe adds after a step: register, explain, deploy, drift."""

from __future__ import annotations

LOAD = (
    "import pandas as pd\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "X = pd.DataFrame({'a': [1.0, 2.0, 3.0, 4.0], 'b': [0.0, 1.0, 0.0, 1.0]})\n"
    "y = [0, 1, 0, 1]\n"
    "X_new = X * 2"
)
TRAIN = "model = LogisticRegression()\nmodel.fit(X, y)"
