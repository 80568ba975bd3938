#!/usr/bin/env python3
"""Validate a Timbre model pack (format timbre-pack/2, see models/README.md).

    /usr/bin/python3 models/check_pack.py models/tiny

Checks pack.json, the sha256 and size of every file (and of golden/ when present), that the archives hold
no debug info, that every TorchScript module loads and has every method of the format with the right
argument names and types, and runs a small smoke call of each method. Exit 0 when the pack is valid,
1 with one "error: ..." line on the first failure, 2 for a usage error."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timbrepack import runtime  # noqa: E402

runtime.require_torch()
import torch  # noqa: E402

from timbrepack import validate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pack", metavar="DIR", help="pack directory")
    ap.add_argument("--no-smoke", action="store_true", help="skip the smoke calls (hashes and signatures only)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    try:
        validate.check(args.pack, run_smoke=not args.no_smoke)
    except validate.PackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("pack is valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
