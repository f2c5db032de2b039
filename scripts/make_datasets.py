"""Write the demo's dataset into the package: scikit-learn's copy of the diabetes data.

Source: B. Efron, T. Hastie, I. Johnstone and R. Tibshirani, "Least Angle Regression",
Annals of Statistics 32(2), 2004 (442 patients, 10 baseline variables, a quantitative
measure of disease progression one year later), as distributed with scikit-learn
(``sklearn.datasets.load_diabetes``, unscaled). Numbers only. Run

    python scripts/make_datasets.py

to rewrite src/regloss/data/diabetes.csv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes

OUT = Path(__file__).parents[1] / "src" / "regloss" / "data" / "diabetes.csv"


def main() -> None:
    data = load_diabetes(scaled=False)
    header = ",".join([*data.feature_names, "target"])
    table = np.column_stack([data.data, data.target])
    np.savetxt(OUT, table, delimiter=",", header=header, comments="", fmt="%.10g")
    print(f"wrote {table.shape[0]} rows to {OUT}")


if __name__ == "__main__":
    main()
