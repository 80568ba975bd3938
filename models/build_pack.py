#!/usr/bin/env python3
"""Write a Timbre model pack (random weights at a given size) and, for tiny, its golden fixtures.

    /usr/bin/python3 models/build_pack.py --size tiny --out models/tiny

Needs only Debian's PyTorch: apt-get install -y python3-torch python3-torchaudio
The output is byte-identical across runs and machines (fixed seeds, PYTHONHASHSEED=0, archives without
debug info, fixed zip dates)."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timbrepack import runtime  # noqa: E402

runtime.reexec_with_fixed_hash_seed()
runtime.require_torch()
import torch  # noqa: E402,F401

from timbrepack import build, golden, sizes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", required=True, choices=sorted(sizes.SIZES), help="pack size")
    ap.add_argument("--out", required=True, help="output directory (created; its parent must exist)")
    ap.add_argument("--name", help="pack name (default: the size)")
    ap.add_argument("--seed", type=int, default=20251124, help="weight seed")
    ap.add_argument("--golden", choices=["auto", "yes", "no"], default="auto",
                    help="write golden fixtures into OUT/golden (auto: only for tiny)")
    args = ap.parse_args()
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        ap.error(f"the parent directory of --out does not exist: {parent}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        ap.error(f"--out exists and is not a directory: {args.out}")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    print(f"building pack {args.name or args.size!r} (size {args.size}) in {args.out}")
    manifest = build.write_pack(args.size, args.out, args.seed, args.name or args.size)
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"  total {sum(manifest['parameters'].values()):,d} parameters, {total:,d} bytes; version {manifest['version']}")
    if args.golden == "yes" or (args.golden == "auto" and args.size == "tiny"):
        golden.write(args.out, os.path.join(args.out, "golden"))
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
