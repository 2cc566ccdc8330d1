"""Bit-identity of the layer kernel's operations across thread counts (1 vs 2).
usage: python bench/linalg_ident.py"""
import numpy as np, numba

import linalg_bench as lb
ok = True
for dt in (np.float32, np.float64):
    for name, n, k, m in lb.SHAPES + [("odd", 37, 29, 19), ("odd", 13, 7, 3), ("odd", 130, 259, 131)]:
        res = {}
        for nt in (1, 2):
            numba.set_num_threads(nt)
            prims = lb.run_all(dt, n, k, m)
            res[nt] = []
            for p in ("fwd", "grad", "back"):
                f, arr, ref = prims[p]
                f()
                err = np.abs(arr - ref).max() / max(np.abs(ref).max(), 1e-30)
                tol = 1e-5 if dt == np.float32 else 1e-12
                if err > tol:
                    print("BAD accuracy", dt.__name__, name, n, k, m, p, err); ok = False
                res[nt].append(arr.copy())
            res[nt].append(prims["db"][1].copy())
        same = all(np.array_equal(x, y) for x, y in zip(res[1], res[2]))
        if not same:
            print("NOT bit-identical", dt.__name__, n, k, m); ok = False
print("identity+accuracy OK" if ok else "FAILED")
