"""Start-up of the toolchain's commands: reproducible hashing and a clear message when PyTorch is missing."""
import os
import sys


def reexec_with_fixed_hash_seed() -> None:
    """TorchScript serialises some constants in hash order: byte-identical archives need PYTHONHASHSEED=0."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)


def require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("error: PyTorch is missing: apt-get install -y python3-torch python3-torchaudio (run with /usr/bin/python3)")
