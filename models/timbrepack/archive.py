"""Reproducible TorchScript archives: no debug info (it holds the build machine's source paths), a fixed top
folder, stored entries, fixed dates and 64-byte aligned data like PyTorch's own writer."""
import hashlib
import io
import os
import zipfile

import torch

_DATE = (1980, 1, 1, 0, 0, 0)
_ALIGN = 64


def _aligned_info(name: str, offset: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 0
    info.external_attr = 0
    header = 30 + len(name.encode())
    pad = (-(offset + header + 4)) % _ALIGN
    info.extra = b"FB" + pad.to_bytes(2, "little") + b"Z" * pad
    return info


def normalise_zip(raw: bytes, top: str) -> bytes:
    """Rewrite a PyTorch zip archive: drop *.debug_pkl, rename the top folder, fix dates and alignment."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for entry in src.infolist():
            if entry.filename.endswith(".debug_pkl"):
                continue
            rest = entry.filename.split("/", 1)[1]
            info = _aligned_info(f"{top}/{rest}", out.tell())
            dst.writestr(info, src.read(entry))
    return out.getvalue()


def save_script(module: torch.jit.ScriptModule, path: str, top: str) -> None:
    """torch.jit.save to a file beside `path`, then rewritten entry by entry into `path` (same bytes as
    normalise_zip): a 2 GB LLM is never held in memory twice over (export_cosyvoice2.py must fit in 8 GB)."""
    raw = path + ".raw"
    try:
        torch.jit.save(module, raw)
        with zipfile.ZipFile(raw) as src, open(path, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as dst:
                for entry in src.infolist():
                    if entry.filename.endswith(".debug_pkl"):
                        continue
                    rest = entry.filename.split("/", 1)[1]
                    dst.writestr(_aligned_info(f"{top}/{rest}", f.tell()), src.read(entry))
    finally:
        if os.path.exists(raw):
            os.remove(raw)


def save_tensors(obj, path: str, top: str) -> None:
    """torch.save with the same normalisation (readable by torch.load and LibTorch's pickle_load)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with open(path, "wb") as f:
        f.write(normalise_zip(buf.getvalue(), top))


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
