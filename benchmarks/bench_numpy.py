"""NumPy ``value_and_grad(..., out=g)`` against this machine's copy bandwidth (issue 9).

Run on demand: ``python benchmarks/bench_numpy.py``. For each size and dtype, ``np.copyto``
between two arrays and ``value_and_grad`` of each loss alternate in rounds in one process;
the table gives the fraction of copy bandwidth reached (bytes: the copy reads one array and
writes one, value_and_grad reads prediction and target and writes the gradient), and the
same without ``out=`` (a fresh gradient array per call) for comparison.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np

from regloss import numpy as rnp
from regloss._bench import alternate, numpy_bandwidth, size_label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", action="append", help="losses (default: mse, huber)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell")
    args = parser.parse_args()
    names = args.loss or ["mse", "huber"]
    print("| N | dtype | copy GB/s | " + " | ".join(f"{n} out= | {n} plain" for n in names) + " |")
    print("|---" * (3 + 2 * len(names)) + "|")
    for n in (2**22, 2**24):
        for dtype in (np.float32, np.float64):
            frac = numpy_bandwidth(names, n, dtype, seconds=args.seconds)
            rng = np.random.default_rng(1)
            p = rng.standard_normal(n).astype(dtype)
            t = rng.standard_normal(n).astype(dtype)
            a, b = np.ones_like(p), np.empty_like(p)
            calls = [functools.partial(np.copyto, b, a)]
            calls += [functools.partial(rnp.value_and_grad, name, p, t) for name in names]
            t_copy, *t_plain = alternate(calls, seconds=args.seconds)
            plain = [(3 * a.nbytes / tl) / (2 * a.nbytes / t_copy) for tl in t_plain]
            cells = [f"{frac[name]:.2f} | {pl:.2f}" for name, pl in zip(names, plain)]
            print(
                f"| {size_label(n)} | {np.dtype(dtype).name} | {frac['copy'] / 1e9:.1f} | "
                + " | ".join(cells)
                + " |",
                flush=True,
            )


if __name__ == "__main__":
    main()
