"""Reading GGUF files: header, metadata, tensors, bits per weight, and what a quant mix changes.

Lesson 02 takes a GGUF file apart with gguf-py's ``GGUFReader``. A GGUF file is

    | magic "GGUF" | version | n_tensors | n_kv | n_kv x (key, type, value) |
    | n_tensors x (name, n_dims, dims, ggml type, offset) | padding | tensor data ... |

Here each tensor becomes a :class:`TensorInfo` (its type, shape, bytes and bits per
weight ``bpw = 8 * bytes / elements``) and the file a :class:`GGUFInfo`.

A llama.cpp file type such as Q4_K_M is a *mix*: the quantizer picks a type per tensor
from its role (attn_v, ffn_down, output ...) and layer index. :func:`compare_types` lines
two or more files up tensor by tensor. :func:`skeleton_gguf` writes a tiny GGUF with a
real model's depth and tensor names; quantizing it with llama.cpp shows which type each
role gets (:func:`courseutils.llamacpp.typemap.llama_type_map`, one layer up because it
runs llama.cpp), and :func:`estimate_bpw` applies that map to the tensor shapes of a
real model to predict its size without downloading it.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import CourseError, GGUFError
from ..core.io import atomic_path

__all__ = [
    "check_gguf",
    "TensorInfo",
    "GGUFInfo",
    "read_gguf",
    "read_tensors",
    "tensor_bytes",
    "compare_types",
    "role_of",
    "LlamaShape",
    "LLAMA_SHAPES",
    "llama_tensor_shapes",
    "skeleton_gguf",
    "estimate_bpw",
]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a GGUF file. ``shape`` is in numpy/PyTorch order: (rows, row length)."""

    name: str
    qtype: str
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int
    offset: int  # absolute byte offset of the data in the file

    @property
    def bpw(self) -> float:
        """Bits per weight of this tensor: 8 * bytes / elements."""
        return 8 * self.n_bytes / self.n_elements


@dataclass(frozen=True)
class GGUFInfo:
    """Header, metadata and tensor table of one GGUF file."""

    path: Path
    version: int
    alignment: int
    data_offset: int  # where tensor data starts; everything before is header + metadata
    file_bytes: int
    metadata: dict = field(repr=False)
    tensors: tuple[TensorInfo, ...] = field(repr=False)

    @property
    def n_elements(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def bpw(self) -> float:
        """Bits per weight over all tensors: 8 * sum(bytes) / sum(elements) (metadata excluded)."""
        return 8 * self.tensor_bytes / self.n_elements

    @property
    def file_bpw(self) -> float:
        """Bits per weight of the whole file, metadata (tokenizer ...) included."""
        return 8 * self.file_bytes / self.n_elements

    def tensor(self, name: str) -> TensorInfo:
        for t in self.tensors:
            if t.name == name:
                return t
        raise CourseError(f"name={name!r} is not a tensor of {self.path.name}; "
                          f"it has {[t.name for t in self.tensors][:6]} ...")

    def type_summary(self) -> list[dict]:
        """Per tensor type: how many tensors, elements, bytes, and its share of the weights."""
        rows: dict[str, dict] = {}
        for t in self.tensors:
            r = rows.setdefault(t.qtype, {"qtype": t.qtype, "tensors": 0, "elements": 0, "bytes": 0})
            r["tensors"] += 1
            r["elements"] += t.n_elements
            r["bytes"] += t.n_bytes
        for r in rows.values():
            r["bpw"] = 8 * r["bytes"] / r["elements"]
            r["share_of_weights"] = r["elements"] / self.n_elements
        return sorted(rows.values(), key=lambda r: -r["elements"])

    def metadata_table(self, max_items: int = 3) -> list[tuple[str, str]]:
        """(key, value) pairs for display; long arrays (the vocabulary) are shortened."""
        out = []
        for key, value in self.metadata.items():
            if isinstance(value, list) and len(value) > max_items:
                shown = ", ".join(repr(v) for v in value[:max_items])
                value = f"[{shown}, ...] ({len(value)} items)"
            out.append((key, str(value)))
        return out


def check_gguf(path: str | os.PathLike, param: str = "path") -> Path:
    """Raise :class:`GGUFError` unless ``path`` is a complete, readable GGUF file."""
    p = Path(path)
    if not p.is_file():
        raise GGUFError(f"{param}={str(p)!r}: no such file")
    st = p.stat()
    if st.st_size == 0:
        raise GGUFError(f"{param}={str(p)!r} is empty (0 bytes); expected a GGUF file")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise GGUFError(f"{param}={str(p)!r} is not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    problem = _gguf_problem(str(p.resolve()), st.st_size, st.st_mtime_ns)
    if problem:
        raise GGUFError(f"{param}={str(p)!r} {problem}")
    return p


@functools.lru_cache(maxsize=256)
def _gguf_problem(path: str, size: int, mtime_ns: int) -> str | None:
    """Parse the whole file once per (path, size, mtime): what is wrong with it, or None."""
    import gguf

    try:
        reader = gguf.GGUFReader(path)
        end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    except Exception as exc:  # gguf-py raises ValueError/IndexError/struct errors on damage
        return f"is truncated or corrupt ({type(exc).__name__}: {exc})"
    if end > size:
        return f"is truncated: tensor data ends at byte {end} but the file has {size}"
    return None


def _reader(path: str | os.PathLike, param: str = "path"):
    import gguf

    p = check_gguf(path, param)
    return gguf.GGUFReader(str(p)), p.stat().st_size


def read_gguf(path: str | os.PathLike) -> GGUFInfo:
    """Read a GGUF file's header, metadata and tensor table with ``gguf.GGUFReader``."""
    reader, size = _reader(path)
    metadata = {}
    for name, fld in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        metadata[name] = fld.contents()
    tensors = tuple(
        TensorInfo(name=t.name, qtype=t.tensor_type.name, shape=tuple(int(s) for s in reversed(t.shape)),
                   n_elements=int(t.n_elements), n_bytes=int(t.n_bytes), offset=int(t.data_offset))
        for t in reader.tensors
    )
    version = int(reader.fields["GGUF.version"].contents())
    return GGUFInfo(path=Path(path), version=version, alignment=int(reader.alignment),
                    data_offset=int(reader.data_offset), file_bytes=size, metadata=metadata, tensors=tensors)


def read_tensors(path: str | os.PathLike, names: list[str] | None = None) -> dict[str, tuple[np.ndarray, str, tuple]]:
    """Stored bytes of several tensors at once (the file is parsed once).

    Returns ``{name: (uint8 array (rows, bytes per row), qtype, shape)}`` for ``names``
    (default: every tensor); ``shape`` is (rows, row length) as in :class:`TensorInfo`.
    """
    reader, _ = _reader(path)
    by_name = {t.name: t for t in reader.tensors}
    wanted = list(by_name) if names is None else list(names)
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise CourseError(f"names contains {missing[:3]}, which are not tensors of {Path(path).name}")
    out = {}
    for name in wanted:
        t = by_name[name]
        shape = tuple(int(s) for s in reversed(t.shape))
        raw = np.array(t.data).view(np.uint8).reshape(int(np.prod(shape[:-1])), -1)
        out[name] = (raw, t.tensor_type.name, shape)
    return out


def tensor_bytes(path: str | os.PathLike, name: str) -> tuple[np.ndarray, str, tuple[int, ...]]:
    """The stored bytes of one tensor: ``(uint8 array (rows, bytes per row), qtype, shape)``."""
    return read_tensors(path, [name])[name]


_ROLE = re.compile(r"^blk\.(\d+)\.(.+?)(\.weight|\.bias)?$")


def role_of(name: str) -> tuple[str, int | None]:
    """``"blk.3.ffn_down.weight"`` -> ``("ffn_down", 3)``; ``"output.weight"`` -> ``("output", None)``."""
    m = _ROLE.match(name)
    if m:
        return m.group(2), int(m.group(1))
    return name.removesuffix(".weight").removesuffix(".bias"), None


def compare_types(files: dict[str, str | os.PathLike], changed_only: bool = False) -> list[dict]:
    """Line several GGUF files up tensor by tensor: one row per tensor, one type column per file.

    Args:
        files: ``{label: path}``, e.g. ``{"Q4_K_S": ..., "Q4_K_M": ...}``.
        changed_only: keep only the tensors whose type differs between the files.
    Returns:
        rows ``{"name", "shape", <label>: qtype, ...}`` in the first file's order.
    """
    if not isinstance(files, dict) or len(files) < 2:
        raise CourseError("files must be a dict {label: path} with at least two GGUF files")
    infos = {label: read_gguf(p) for label, p in files.items()}
    first = next(iter(infos.values()))
    rows = []
    for t in first.tensors:
        row = {"name": t.name, "shape": t.shape}
        for label, info in infos.items():
            row[label] = info.tensor(t.name).qtype
        if not changed_only or len({row[label] for label in infos}) > 1:
            rows.append(row)
    return rows


# ---------------------------------------------------------------- predicting real models' sizes
@dataclass(frozen=True)
class LlamaShape:
    """The sizes that decide a Llama-architecture model's tensor shapes (from its config.json)."""

    name: str
    n_layer: int
    d_model: int  # hidden_size
    d_ff: int  # intermediate_size
    n_head: int
    n_kv_head: int
    n_vocab: int
    tied: bool = False  # tie_word_embeddings: no separate output.weight


# Values from each model's published config.json.
LLAMA_SHAPES = {
    "Llama-2-7B": LlamaShape("Llama-2-7B", 32, 4096, 11008, 32, 32, 32000),
    "Llama-3-8B": LlamaShape("Llama-3-8B", 32, 4096, 14336, 32, 8, 128256),
    "Llama-2-70B": LlamaShape("Llama-2-70B", 80, 8192, 28672, 64, 8, 32000),
}


def llama_tensor_shapes(cfg: LlamaShape) -> dict[str, tuple[int, ...]]:
    """GGUF tensor names of a Llama model and their (rows, row length) shapes."""
    hd = cfg.d_model // cfg.n_head
    shapes = {"token_embd.weight": (cfg.n_vocab, cfg.d_model), "output_norm.weight": (cfg.d_model,)}
    if not cfg.tied:
        shapes["output.weight"] = (cfg.n_vocab, cfg.d_model)
    for i in range(cfg.n_layer):
        b = f"blk.{i}."
        shapes.update({
            b + "attn_norm.weight": (cfg.d_model,), b + "ffn_norm.weight": (cfg.d_model,),
            b + "attn_q.weight": (cfg.d_model, cfg.d_model), b + "attn_k.weight": (cfg.n_kv_head * hd, cfg.d_model),
            b + "attn_v.weight": (cfg.n_kv_head * hd, cfg.d_model),
            b + "attn_output.weight": (cfg.d_model, cfg.d_model),
            b + "ffn_gate.weight": (cfg.d_ff, cfg.d_model), b + "ffn_up.weight": (cfg.d_ff, cfg.d_model),
            b + "ffn_down.weight": (cfg.d_model, cfg.d_ff),
        })
    return shapes


def skeleton_gguf(cfg: LlamaShape, out: str | os.PathLike, width: int = 256, rows: int = 16, seed: int = 0) -> Path:
    """Write a GGUF with ``cfg``'s depth, head counts and tensor names but tiny matrices.

    Every matrix is ``rows`` x ``width`` (rows of a multiple of 256, so no K-quant falls
    back) of random F16 values. llama.cpp picks a tensor's type from its name, layer index,
    the layer count and the head ratio, not from its size, so quantizing the skeleton
    shows the types the full model would get, in a second instead of an hour.
    """
    import gguf

    if width % 256:
        raise CourseError(f"width={width} must be a multiple of 256 (the K-quant super-block)")
    kv_ratio = cfg.n_head // cfg.n_kv_head
    n_head = min(cfg.n_head, width // 8)
    n_kv = max(1, n_head // kv_ratio)
    hd = width // n_head
    rng = np.random.default_rng(seed)
    small = LlamaShape(cfg.name, cfg.n_layer, width, width, n_head, n_kv, width, cfg.tied)
    with atomic_path(out) as tmp, contextlib.closing(gguf.GGUFWriter(str(tmp), "llama")) as w:
        w.add_context_length(512)
        w.add_embedding_length(width)
        w.add_block_count(cfg.n_layer)
        w.add_feed_forward_length(width)
        w.add_rope_dimension_count(hd)
        w.add_head_count(n_head)
        w.add_head_count_kv(n_kv)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        for name, shape in llama_tensor_shapes(small).items():
            if len(shape) == 1:
                w.add_tensor(name, np.ones(shape, np.float32))
            else:
                w.add_tensor(name, (rng.standard_normal((rows, width)) * 0.02).astype(np.float16))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
    return Path(out)


def estimate_bpw(cfg: LlamaShape, types: dict[str, str]) -> dict:
    """Size of ``cfg`` with a tensor -> type map: bytes per tensor from the block layouts.

    Returns ``{"params", "bytes", "bpw", "by_type": {qtype: elements}}``; bpw = 8 * bytes / params.
    """
    from .blocks import row_bytes

    shapes = llama_tensor_shapes(cfg)
    missing = sorted(set(shapes) - set(types))
    if missing:
        raise CourseError(f"types has no entry for {len(missing)} tensors of {cfg.name}, e.g. {missing[:3]}")
    total_bytes = params = 0
    by_type: dict[str, int] = {}
    for name, shape in shapes.items():
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        total_bytes += rows * row_bytes(shape[-1], types[name])
        n = int(np.prod(shape))
        params += n
        by_type[types[name]] = by_type.get(types[name], 0) + n
    return {"params": params, "bytes": total_bytes, "bpw": 8 * total_bytes / params, "by_type": by_type}
