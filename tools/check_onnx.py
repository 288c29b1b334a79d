#!/usr/bin/env python3
"""Validate ONNX files (e.g. ticket's pruned exports) with onnx.checker, full_check=True.

    python tools/check_onnx.py MODEL.onnx [...]

Prints `ok MODEL` per valid model; for an invalid one a one-line error, and exits 1.
The checker gets the path, not a loaded model, so external data and models over 2 GB work.
"""
import sys

import onnx


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: check_onnx.py MODEL.onnx [...]")
    failed = False
    for path in sys.argv[1:]:
        try:
            onnx.checker.check_model(path, full_check=True)
            print(f"ok {path}")
        except Exception as e:  # checker, shape-inference and I/O errors alike
            msg = " ".join(str(e).split())
            print(f"error {path}: {type(e).__name__}: {msg}")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
