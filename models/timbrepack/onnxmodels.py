"""The pack's two ONNX models, carried as the CosyVoice 2 release ships them and run by ONNX Runtime:

- campplus.onnx (speaker encoder): input 0 float32 [B, T, 80] (Kaldi fbank minus its mean) -> output 0 float32
  [B, 192];
- speech_tokenizer_v2.onnx: input 0 float32 [1, 128, T] (Whisper log-mel), input 1 int32 [1] (T) -> output 0
  integer ids [1, N] (int32 or int64; CosyVoice flattens it).

Inputs are fed by position, as CosyVoice's frontend does. For the random-weight packs the toolchain exports small
models with these signatures (torch.onnx.export). Without the `onnx` package or onnxruntime (Debian's python)
the signatures are read by a small protobuf reader (`signature`), enough for the checks here."""
import io
import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch

ONNX_FILES = {"speaker_encoder": "campplus.onnx", "speech_tokenizer": "speech_tokenizer_v2.onnx"}
OPSET = 17

# ONNX TensorProto element types
FLOAT, INT32, INT64 = 1, 6, 7
TYPE_NAMES = {FLOAT: "float32", INT32: "int32", INT64: "int64"}

# role -> ([(allowed element types, rank, {axis: fixed size})] for inputs, the same for output 0)
SIGNATURES = {
    "speaker_encoder": ([((FLOAT,), 3, {2: 80})], ((FLOAT,), 2, {1: 192})),
    "speech_tokenizer": ([((FLOAT,), 3, {1: 128}), ((INT32,), 1, {})], ((INT32, INT64), 2, {})),
}

Dim = object  # int (fixed), str (symbolic) or None (unknown)
Value = Tuple[str, int, List[Dim]]  # (name, element type, dims)


# ---------------------------------------------------------------------------------------- protobuf
def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _fields(buf: bytes):
    """(field number, wire type, value) of one protobuf message; length-delimited values are bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield num, wire, v


def _value_info(buf: bytes) -> Value:
    name, elem, dims = "", 0, []
    for num, _, v in _fields(buf):
        if num == 1:                                   # ValueInfoProto.name
            name = v.decode("utf-8", "replace")
        elif num == 2:                                 # .type (TypeProto)
            for tnum, _, tv in _fields(v):
                if tnum == 1:                          # TypeProto.tensor_type
                    for anum, _, av in _fields(tv):
                        if anum == 1:                  # elem_type
                            elem = av
                        elif anum == 2:                # shape (TensorShapeProto)
                            for snum, _, sv in _fields(av):
                                if snum == 1:          # dim
                                    d: Dim = None
                                    for dnum, _, dv in _fields(sv):
                                        d = dv if dnum == 1 else dv.decode("utf-8", "replace") if dnum == 2 else d
                                    dims.append(d)
    return name, elem, dims


def signature(data: bytes) -> Tuple[List[Value], List[Value]]:
    """Graph inputs (initializers excluded) and outputs of an ONNX model, read from its protobuf bytes."""
    graph = None
    for num, wire, v in _fields(data):
        if num == 7 and wire == 2:                     # ModelProto.graph
            graph = v
    if graph is None:
        raise ValueError("no graph (not an ONNX model)")
    inputs, outputs, inits = [], [], set()
    for num, wire, v in _fields(graph):
        if wire != 2:
            continue
        if num == 11:
            inputs.append(_value_info(v))
        elif num == 12:
            outputs.append(_value_info(v))
        elif num == 5:                                 # initializer (TensorProto); its name is field 8
            for tnum, _, tv in _fields(v):
                if tnum == 8:
                    inits.add(tv.decode("utf-8", "replace"))
    return [i for i in inputs if i[0] not in inits], outputs


def _describe(v: Value) -> str:
    return f"{v[0]!r} {TYPE_NAMES.get(v[1], 'type ' + str(v[1]))} {v[2]}"


def _matches(v: Value, want) -> bool:
    types, rank, fixed = want
    if v[1] not in types or len(v[2]) != rank:
        return False
    return all(not isinstance(v[2][ax], int) or v[2][ax] == size for ax, size in fixed.items())


def _want(want) -> str:
    types, rank, fixed = want
    return f"{'/'.join(TYPE_NAMES[t] for t in types)} of rank {rank}" + (
        "".join(f", axis {a} = {s}" for a, s in fixed.items()))


def check_signature(role: str, path: str) -> str:
    """Raise ValueError naming the file, the input/output and what was expected; return a one-line summary."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        inputs, outputs = signature(data)
    except ValueError as e:
        raise ValueError(f"{path}: not a readable ONNX model ({e})")
    want_in, want_out = SIGNATURES[role]
    if len(inputs) != len(want_in):
        raise ValueError(f"{path}: {len(inputs)} inputs {[_describe(i) for i in inputs]}, the {role} takes {len(want_in)}")
    for k, (v, w) in enumerate(zip(inputs, want_in)):
        if not _matches(v, w):
            raise ValueError(f"{path}: input {k} is {_describe(v)}, the {role} wants {_want(w)}")
    if not outputs or not _matches(outputs[0], want_out):
        got = _describe(outputs[0]) if outputs else "missing"
        raise ValueError(f"{path}: output 0 is {got}, the {role} wants {_want(want_out)}")
    return ", ".join(_describe(i) for i in inputs) + " -> " + _describe(outputs[0])


# ------------------------------------------------------------------------------------------- export
def export(module: torch.nn.Module, args: tuple, path: str, input_names: Sequence[str], output_names: Sequence[str],
           dynamic_axes: Dict[str, Dict[int, str]]) -> None:
    """torch.onnx.export into memory, then one write (the bytes depend only on the weights and the PyTorch version)."""
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module.eval(), args, buf, input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def export_speaker_encoder(module: torch.nn.Module, path: str) -> None:
    export(module, (torch.randn(1, 200, 80),), path, ["input"], ["output"], {"input": {0: "B", 1: "T"}, "output": {0: "B"}})


def export_speech_tokenizer(module: torch.nn.Module, path: str) -> None:
    export(module, (torch.randn(1, 128, 300), torch.tensor([300], dtype=torch.int32)), path, ["feats", "feats_length"],
           ["indices"], {"feats": {2: "T"}, "indices": {1: "N"}})


# ------------------------------------------------------------------------------------------ running
def have_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
        return True
    except ImportError:
        return False


class Session:
    """One ONNX Runtime session with CosyVoice's options (all graph optimisations, one intra-op thread, CPU)."""

    def __init__(self, path: str):
        try:
            import onnxruntime as ort
        except ImportError:
            raise SystemExit("error: onnxruntime is missing for this python; models/README.md §13 says how to add it "
                             "(pip install --target DIR onnxruntime --no-deps, then PYTHONPATH=DIR)")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])

    def run(self, *arrays):
        names = [i.name for i in self.session.get_inputs()]
        return self.session.run(None, dict(zip(names, arrays)))[0]


class OnnxFrontend:
    """The two models of a pack directory, lazily opened: speaker_embedding(fbank) and speech_tokens(log-mel)."""

    def __init__(self, directory: str, frontend_manifest: dict):
        self.paths = {role: os.path.join(directory, frontend_manifest[role]) for role in ONNX_FILES}
        self._sessions: Dict[str, Optional[Session]] = {}

    def _session(self, role: str) -> Session:
        if role not in self._sessions:
            self._sessions[role] = Session(self.paths[role])
        return self._sessions[role]

    def speaker_embedding(self, fbank: torch.Tensor) -> torch.Tensor:
        """[1, T, 80] -> float32 [1, 192] (CosyVoice: run(...)[0].flatten())"""
        out = self._session("speaker_encoder").run(fbank.detach().cpu().numpy())
        return torch.from_numpy(out.reshape(1, -1).astype("float32"))

    def speech_tokens(self, log_mel: torch.Tensor) -> torch.Tensor:
        """[1, 128, T] -> int32 [1, N] (CosyVoice: run(feats, [T] int32)[0].flatten())"""
        import numpy as np
        out = self._session("speech_tokenizer").run(log_mel.detach().cpu().numpy(),
                                                    np.array([log_mel.shape[2]], dtype=np.int32))
        return torch.from_numpy(out.reshape(1, -1).astype("int32"))
