"""The bridge to llama.cpp (through llama-cpp-python): quantize, load, get logits, generate.

- :func:`quant_types` lists the file types ``llama-quantize`` offers; :func:`quantize`
  calls ``llama_model_quantize`` itself, optionally with an importance matrix passed as
  ``llama_model_imatrix_data`` structs (what ``llama-quantize --imatrix`` builds).
- :func:`check_gguf` (from :mod:`courseutils.ggml.ggufinfo`) refuses missing, empty, truncated or non-GGUF files before llama.cpp
  sees them (llama.cpp may abort the whole process on a corrupt file).
- :class:`LlamaCpp` wraps ``llama_cpp.Llama`` with the three things lessons need: tokens,
  per-position logits, greedy generation. GPU layers are offloaded when the wheel was
  built with CUDA and ``COURSE_DEVICE`` allows it. It is the one place that loads a model,
  so the load mode of :mod:`courseutils.llamacpp.loading` (AMX-safe) applies to every load.
  It keeps llama.cpp's load log (``load_log``) and reads from it what llama.cpp allocated
  (:meth:`LlamaCpp.buffer_sizes`).
- When llama.cpp fails (quantize, load, logits, generation) the exception ends with
  llama.cpp's own last log lines, captured by :mod:`courseutils.llamacpp.log`.
- :func:`get_gguf` returns a cached GGUF of a model at a type, exporting and quantizing
  on first use (the cache key includes a fingerprint of the weights). It checks that
  llama.cpp tokenizes the exported file exactly as the HF tokenizer does
  (:func:`check_tokenizer_parity`, explained by :mod:`courseutils.llamacpp.parity`).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import re
import struct
from pathlib import Path

import numpy as np

from ..core.config import cache_dir, get_device
from ..core.errors import CourseError, LlamaCppError, QuantTypeError, TokenizerMismatchError
from ..core.io import atomic_path, check_output_path
from ..ggml.ggufinfo import check_gguf
from .loading import LoadMode, load_mode, model_params
from .log import captured_log, muted
from .parity import PARITY_TEXT, check_same_tokens

# llama.cpp's OpenMP threads otherwise spin while waiting for work; on a busy 2-core laptop
# that made evaluation 4-25x slower (measured). Must be set before llama_cpp is loaded; a
# value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["quant_types", "IMATRIX_REQUIRED", "quantize", "check_gguf", "LlamaCpp", "get_gguf",
           "gpu_offload_supported", "model_fingerprint", "quiet_stderr", "parse_buffer_sizes",
           "check_tokenizer_parity", "check_imatrix_values"]

# File types of llama-quantize, in its order, minus experimental ones. F32/F16/BF16 are
# "quantizations" too: llama-quantize can convert to them.
_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1",
          "Q4_0", "IQ4_NL", "IQ4_XS", "Q3_K_L", "Q3_K_M", "Q3_K_S", "IQ3_M", "IQ3_S", "IQ3_XS", "IQ3_XXS", "Q2_K",
          "Q2_K_S", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S"]
# Types whose tensors llama.cpp refuses to quantize without an importance matrix
# (tensor_requires_imatrix in src/llama-quant.cpp: IQ1_*, IQ2_XXS/XS/S, IQ3_XXS, and Q2_K inside Q2_K_S).
IMATRIX_REQUIRED = frozenset({"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "Q2_K_S"})


def quant_types(include_imatrix_only: bool = True) -> list[str]:
    """Names accepted by :func:`quantize` (optionally without those that need an imatrix)."""
    return [t for t in _TYPES if include_imatrix_only or t not in IMATRIX_REQUIRED]


def _ftype(qtype: str) -> int:
    import llama_cpp

    if not isinstance(qtype, str) or qtype.upper() not in _TYPES:
        raise QuantTypeError(f"qtype={qtype!r} is not a llama.cpp quantization type; allowed: {', '.join(_TYPES)}")
    name = qtype.upper()
    attr = "LLAMA_FTYPE_ALL_F32" if name == "F32" else f"LLAMA_FTYPE_MOSTLY_{name}"
    return int(getattr(llama_cpp, attr))


@contextlib.contextmanager
def quiet_stderr(enabled: bool = True):
    """Silence llama.cpp's logs while the block runs.

    They arrive two ways: llama.cpp's log callback (llama-cpp-python's prints through Python's
    ``sys.stderr``, which a notebook shows), muted at the tap of :mod:`.log`, and C code
    that writes to file descriptor 2 directly, sent to /dev/null. nbgrader gives 0 to a test
    cell that writes to stderr, and the quantizer logs a line per tensor.
    """
    if not enabled:
        yield
        return
    import sys

    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with muted():  # the log callback prints through Python's sys.stderr: mute it at the tap
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def check_imatrix_values(name: str, values) -> np.ndarray:
    """``values`` of one importance-matrix entry as float32, or a clear error unless 1-D, finite, >= 0."""
    arr = np.ascontiguousarray(values, dtype=np.float32)
    if arr.ndim != 1 or not np.isfinite(arr).all() or (arr < 0).any():
        raise QuantTypeError(f"imatrix[{name!r}] must be a 1-D array of finite, non-negative values")
    return arr


def _imatrix_structs(imatrix: dict[str, np.ndarray]):
    """A NULL-terminated ``llama_model_imatrix_data[]`` array (and the buffers it points to)."""
    import llama_cpp

    entries = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
    keep = []
    for i, (name, values) in enumerate(sorted(imatrix.items())):
        arr = check_imatrix_values(name, values)
        name_b = name.encode()
        keep += [arr, name_b]
        entries[i].name = name_b
        entries[i].data = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[i].size = arr.size
    entries[len(imatrix)].name = None
    return entries, keep


def _tensor_type_structs(tensor_types: dict[str, str], src: Path):
    """A NULL-terminated ``llama_model_tensor_override[]``: one anchored pattern ``^name$`` per tensor.

    llama.cpp matches each tensor's name against the patterns (``std::regex_search``) and
    stores a match in the given ggml type (what ``llama-quantize --tensor-type`` does).
    """
    import gguf
    import llama_cpp

    names = {t.name for t in gguf.GGUFReader(str(src)).tensors}
    entries = (llama_cpp.llama_model_tensor_override * (len(tensor_types) + 1))()
    keep = []
    for i, (name, type_name) in enumerate(sorted(tensor_types.items())):
        if name not in names:
            raise QuantTypeError(f"tensor_types[{name!r}]: no tensor of that name in {str(src)!r}; "
                                 f"its tensors are named like {', '.join(sorted(names)[:4])}, ...")
        ggml_type = getattr(llama_cpp, f"GGML_TYPE_{str(type_name).upper()}", None)
        if ggml_type is None or str(type_name).upper() in ("COUNT",):
            allowed = sorted(k[len("GGML_TYPE_"):] for k in dir(llama_cpp) if k.startswith("GGML_TYPE_") and k != "GGML_TYPE_COUNT")
            raise QuantTypeError(f"tensor_types[{name!r}]={type_name!r} is not a ggml tensor type; allowed: {', '.join(allowed)}")
        pattern = f"^{re.escape(name)}$".encode()
        keep.append(pattern)
        entries[i].pattern = pattern
        entries[i].type = int(ggml_type)
    entries[len(tensor_types)].pattern = None
    return entries, keep


def quantize(src: str | os.PathLike, out: str | os.PathLike, qtype: str,
             imatrix: dict[str, np.ndarray] | None = None, n_threads: int = 0, verbose: bool = False,
             tensor_types: dict[str, str] | None = None) -> Path:
    """Quantize a GGUF file with ``llama_model_quantize`` (what ``llama-quantize`` runs).

    Args:
        src: an F32/F16 GGUF (from :func:`courseutils.gguf_export.export_gguf`).
        out: output path; written to a temporary name first, renamed when complete.
        qtype: a name from :func:`quant_types`, e.g. ``"Q4_K_M"``.
        imatrix: optional importance matrix ``{tensor name: E[x_j^2] per input column}``.
        verbose: show llama.cpp's per-tensor log.
        tensor_types: per-tensor overrides ``{GGUF tensor name: ggml type name}`` (``"Q6_K"``,
            ``"Q8_0"``, ...), through llama.cpp's own override list; other tensors follow ``qtype``.
    """
    import llama_cpp

    ftype = _ftype(qtype)
    if qtype.upper() in IMATRIX_REQUIRED and not imatrix:
        raise QuantTypeError(f"qtype={qtype!r} needs an importance matrix (imatrix=...); types that need one: "
                             f"{', '.join(sorted(IMATRIX_REQUIRED))}")
    src = check_gguf(src, "src")
    final = check_output_path(out)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = n_threads
    keep = []
    if imatrix:
        entries, buffers = _imatrix_structs(imatrix)
        keep += [entries, buffers]
        params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    if tensor_types:
        overrides, patterns = _tensor_type_structs(dict(tensor_types), src)
        keep += [overrides, patterns]
        params.tt_overrides = ctypes.cast(overrides, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    with atomic_path(final) as tmp:
        with captured_log() as log, quiet_stderr(not verbose):
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            raise QuantTypeError(f"llama.cpp could not quantize {str(src)!r} to qtype={qtype!r} (return code {rc}); "
                                 f"its last log lines:\n{log.tail()}")
    del keep  # the imatrix buffers and override patterns had to outlive the call
    return final


def gpu_offload_supported() -> bool:
    """True when this llama-cpp-python build can offload layers to a GPU."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


class LlamaCpp:
    """A GGUF model loaded in llama.cpp, with logits for every position.

    Args:
        path: GGUF file.
        n_ctx: context size (the longest token sequence :meth:`logits` accepts).
        device: ``auto``/``cpu``/``cuda``; on ``cuda`` all layers are offloaded when the
            llama-cpp-python build supports it.
        flash_attn: fused attention kernel. On by default because llama.cpp's own tools
            (``llama-perplexity``) turn it on by default; the two kernels round differently,
            so perplexities differ in the 4th or 5th digit with it off.
        n_batch: tokens evaluated per step (default ``n_ctx``: the whole sequence at once).
        kv_type: ``"f16"`` (llama.cpp's default) or ``"f32"``: the type K and V are stored in
            the KV cache (lesson 03 measures what the F16 rounding of the cache changes).
        mode: a :class:`LoadMode`; default :func:`load_mode` (safe on CPUs with AMX).
        vocab_only: load the tokenizer only (no weights; fast): :meth:`tokenize` and
            :meth:`detokenize` work, :meth:`logits` and :meth:`generate` do not.

    Attributes:
        load_log: llama.cpp's log of this load (str), the source of :meth:`buffer_sizes`.

    Raises:
        LlamaCppError: llama.cpp refused the file; the message ends with its last log lines.
    """

    def __init__(self, path: str | os.PathLike, n_ctx: int = 512, device: str | None = None,
                 n_threads: int | None = None, seed: int = 0, flash_attn: bool = True,
                 n_batch: int | None = None, mode: LoadMode | None = None, vocab_only: bool = False,
                 kv_type: str = "f16"):
        from llama_cpp import Llama

        from ..numerics.metrics import check_n_ctx

        n_ctx = check_n_ctx(n_ctx)
        n_batch = n_ctx if n_batch is None else n_batch
        if isinstance(n_batch, bool) or not isinstance(n_batch, int) or not 1 <= n_batch <= n_ctx:
            raise CourseError(f"n_batch={n_batch!r} must be an integer between 1 and n_ctx={n_ctx}")
        kv_types = {"f16": 1, "f32": 0}  # GGML_TYPE_F16, GGML_TYPE_F32
        if kv_type not in kv_types:
            raise CourseError(f"kv_type={kv_type!r}; allowed: {', '.join(kv_types)}")
        self.path = check_gguf(path)
        self.kv_type = kv_type
        self.n_ctx = n_ctx
        self.on_gpu = get_device(device) == "cuda" and gpu_offload_supported()
        self.mode = mode or load_mode()
        self.vocab_only = bool(vocab_only)
        with captured_log() as log, quiet_stderr(), model_params(self.mode.use_extra_bufts):
            try:
                self.llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                                 logits_all=True, n_gpu_layers=-1 if self.on_gpu else 0, n_threads=n_threads,
                                 seed=seed, use_mmap=False, flash_attn=flash_attn, vocab_only=self.vocab_only,
                                 type_k=kv_types[kv_type], type_v=kv_types[kv_type], verbose=False)
            except ValueError as exc:  # llama-cpp-python: "Failed to load model from file" / "... context"
                raise LlamaCppError(f"path={str(self.path)!r}: llama.cpp could not load it ({exc}); "
                                    f"its last log lines:\n{log.tail()}") from exc
        self.load_log: str = log.text
        self.bos_id = int(self.llm.token_bos())
        self.eos_id = int(self.llm.token_eos())
        self.n_vocab = int(self.llm.n_vocab())

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids as llama.cpp splits ``text`` (BOS in front by default)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False)

    def detokenize(self, tokens) -> str:
        return self.llm.detokenize([int(t) for t in tokens]).decode("utf-8", errors="replace")

    def logits(self, tokens) -> np.ndarray:
        """float32 logits ``(len(tokens), n_vocab)``, evaluated from an empty cache."""
        tokens = [int(t) for t in tokens]
        self._need_weights("logits")
        if not 1 <= len(tokens) <= self.n_ctx:
            raise CourseError(f"len(tokens)={len(tokens)} must be between 1 and n_ctx={self.n_ctx}")
        with captured_log() as log:
            try:
                self.llm.reset()
                self.llm.eval(tokens)
            except RuntimeError as exc:  # llama-cpp-python: "llama_decode returned -1"
                raise LlamaCppError(f"llama.cpp could not evaluate {len(tokens)} tokens ({exc}); "
                                    f"its last log lines:\n{log.tail()}") from exc
        return np.array(self.llm.scores[: len(tokens)], dtype=np.float32)

    def generate(self, prompt: str, max_tokens: int = 64, stop: list[str] | None = None) -> str:
        """Greedy completion of ``prompt`` (temperature 0, so it is reproducible)."""
        self._need_weights("generate")
        with captured_log() as log:
            try:
                self.llm.reset()
                out = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, stop=stop)
            except RuntimeError as exc:
                raise LlamaCppError(f"llama.cpp could not generate from prompt={prompt[:60]!r} ({exc}); "
                                    f"its last log lines:\n{log.tail()}") from exc
        return out["choices"][0]["text"]

    def _need_weights(self, what: str) -> None:
        if self.vocab_only:
            raise CourseError(f"{what}() needs the weights, but {str(self.path)!r} was loaded with vocab_only=True")

    def buffer_sizes(self) -> dict:
        """What llama.cpp reported allocating at load, in bytes, read from :attr:`load_log`.

        llama.cpp logs one line per buffer, e.g. ``CPU_REPACK model buffer size = 3.26 MiB``
        (weights; ``CPU_Mapped`` when memory-mapped, ``CUDA0`` on a GPU), ``CPU KV buffer
        size`` (the KV cache), ``CPU output buffer size`` (logits) and ``CPU compute buffer
        size`` (scratch for one batch). The values are printed in MiB with two decimals, so
        each is exact to ±0.005 MiB (±5243 bytes).

        Returns:
            ``{"model": {buffer type: bytes}, "kv": {...}, "output": {...}, "compute": {...},
            "total": bytes}``; a kind llama.cpp did not report is ``{}`` (``vocab_only`` loads
            report only ``model``, with nothing in it).
        """
        return parse_buffer_sizes(self.load_log)

    def memory_bytes(self) -> dict:
        """Memory the loaded model holds: weights as llama.cpp stores them plus the KV cache.

        KV cache = 2 (K and V) × layers × n_ctx × kv_heads × head_dim × 2 bytes (F16 cache,
        llama.cpp's default; 4 with ``kv_type="f32"``). Compute scratch buffers are not counted.
        """
        meta = self.llm.metadata
        arch = meta.get("general.architecture", "llama")
        n_layer = int(meta[f"{arch}.block_count"])
        n_head = int(meta[f"{arch}.attention.head_count"])
        n_kv = int(meta.get(f"{arch}.attention.head_count_kv", n_head))
        head_dim = int(meta.get(f"{arch}.attention.key_length", int(meta[f"{arch}.embedding_length"]) // n_head))
        weights = int(self.llm._model.size())
        kv = 2 * n_layer * self.n_ctx * n_kv * head_dim * (4 if self.kv_type == "f32" else 2)
        return {"weights": weights, "kv_cache": kv, "total": weights + kv}

    def close(self) -> None:
        with quiet_stderr():
            self.llm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_BUFFER_LINE = re.compile(r"(\S+)\s+(model|KV|output|compute) buffer size\s*=\s*([\d.]+) MiB")


def parse_buffer_sizes(log: str) -> dict:
    """The buffer sizes llama.cpp logged while loading (see :meth:`LlamaCpp.buffer_sizes`).

    Lines look like ``load_tensors:   CPU_Mapped model buffer size =  3.26 MiB``; the kind
    (``model``/``KV``/``output``/``compute``) is keyed in lower case, the buffer type as
    printed. A buffer type that appears twice for one kind is summed.
    """
    sizes: dict = {"model": {}, "kv": {}, "output": {}, "compute": {}}
    for buft, kind, mib in _BUFFER_LINE.findall(log):
        per_type = sizes[kind.lower()]
        per_type[buft] = per_type.get(buft, 0) + round(float(mib) * 2**20)
    sizes["total"] = sum(b for kind in ("model", "kv", "output", "compute") for b in sizes[kind].values())
    return sizes


def model_fingerprint(model_dir: str | os.PathLike) -> str:
    """A short hash of a model directory's config and weights (cheap for big files)."""
    d = Path(model_dir)
    h = hashlib.sha256()
    for f in sorted(d.glob("*.json")) + sorted(d.glob("*.safetensors")):
        size = f.stat().st_size
        h.update(f.name.encode() + struct.pack("<Q", size))
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), 2)
                h.update(fh.read())
    return h.hexdigest()[:12]


def check_tokenizer_parity(path: str | os.PathLike, model: str | os.PathLike, text: str = PARITY_TEXT) -> int:
    """Raise unless llama.cpp splits ``text`` into the same token ids as ``model``'s HF tokenizer.

    llama.cpp loads the file's vocabulary only; the result is remembered per file version
    (path, size, mtime), so calling this before every use costs nothing after the first.

    Args:
        path: an exported GGUF.
        model: the model reference it was exported from (``"tinycode"``, a directory, a hub id).
        text: the sample; default :data:`courseutils.llamacpp.parity.PARITY_TEXT`.

    Returns:
        The number of tokens compared.

    Raises:
        TokenizerMismatchError: at the first differing token (see :func:`~courseutils.llamacpp.parity.check_same_tokens`).
    """
    p = check_gguf(path).resolve()
    st = p.stat()
    stamp = p.with_name(p.name + ".parity.json")
    key = _parity_key(st, model, text)
    try:
        remembered = json.loads(stamp.read_text())
        if remembered.get("key") == key:
            return int(remembered["n_tokens"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no stamp yet, or an unreadable one: check again
    n = _tokenizer_parity(str(p), st.st_size, st.st_mtime_ns, str(model), text)
    try:
        with atomic_path(stamp, "parity stamp") as tmp:
            tmp.write_text(json.dumps({"key": key, "n_tokens": n, "model": str(model)}))
    except OSError:
        pass  # a read-only cache only means the check runs again next time
    return n


def _parity_key(st: os.stat_result, model: str | os.PathLike, text: str) -> str:
    """What a passed parity check depends on: this file version, the tokenizer's files,
    the llama.cpp build that tokenizes, and the sample text.

    A stamp with this key beside the GGUF lets a fresh process skip the check (and the
    seconds-long import of transformers it needs) until one of them changes.
    """
    import llama_cpp

    from ..model.loader import resolve_model

    where = Path(resolve_model(model)[1])
    tokenizer = model_fingerprint(where) if where.is_dir() else str(model)
    parts = [str(st.st_size), str(st.st_mtime_ns), tokenizer, llama_cpp.__version__, text]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=64)
def _tokenizer_parity(path: str, size: int, mtime_ns: int, model: str, text: str) -> int:
    from ..ggml.gguf_export import gguf_pre_tokenizer
    from ..model.loader import load_tokenizer

    tokenizer = load_tokenizer(model)
    hf = [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    with LlamaCpp(path, n_ctx=64, vocab_only=True) as llm:
        cpp = [int(t) for t in llm.tokenize(text, add_bos=False)]
    return check_same_tokens(cpp, hf, tokenizer, text, path, gguf_pre_tokenizer(path), model)


def get_gguf(model: str = "tinycode", qtype: str = "Q4_K_M", imatrix: dict[str, np.ndarray] | None = None,
             pre_tokenizer: str | None = None, tensor_types: dict[str, str] | None = None) -> Path:
    """A GGUF of ``model`` at ``qtype``, exported and quantized on first use, then cached.

    Files live in ``COURSE_CACHE``; the name carries the weights' fingerprint (and the
    imatrix's, and ``pre_tokenizer`` when given), so retraining or changing the imatrix
    never reuses a stale file. The exported file must tokenize like the HF tokenizer
    (:func:`check_tokenizer_parity`); one that does not is deleted, never used.

    Args:
        model: ``"tinycode"``, a local HF directory, or a hub id.
        qtype: a name from :func:`quant_types`.
        imatrix: optional importance matrix (see :func:`quantize`).
        tensor_types: optional per-tensor types (see :func:`quantize`); part of the file name's digest.
        pre_tokenizer: llama.cpp pre-tokenizer name; None detects it from the tokenizer
            (:func:`courseutils.ggml.pretokenizer.detect_pre_tokenizer`).

    Raises:
        UnknownPreTokenizerError: ``pre_tokenizer`` is None and the tokenizer is not in the table.
        TokenizerMismatchError: llama.cpp tokenizes the export differently from HF.
    """
    from ..ggml.gguf_export import export_gguf
    from ..model.loader import local_model_dir

    qtype = qtype.upper() if isinstance(qtype, str) else qtype
    _ftype(qtype)
    label, where = local_model_dir(model)
    stem = f"{label}-{model_fingerprint(where)}" + (f"-pre-{pre_tokenizer}" if pre_tokenizer else "")
    base_type = "F32" if qtype == "F32" else "F16"
    base = export_gguf(model, cache_dir() / f"{stem}-{base_type}.gguf", dtype=base_type, pre_tokenizer=pre_tokenizer)
    try:
        check_tokenizer_parity(base, where)
    except TokenizerMismatchError:
        base.unlink(missing_ok=True)  # never leave a silently different model in the cache
        raise
    if qtype == base_type:
        return base
    suffix = ""
    if imatrix:
        digest = hashlib.sha256()
        for name in sorted(imatrix):
            digest.update(name.encode() + np.ascontiguousarray(imatrix[name], dtype=np.float32).tobytes())
        suffix = f"-imat{digest.hexdigest()[:8]}"
    if tensor_types:
        digest = hashlib.sha256(json.dumps(sorted((str(k), str(v).upper()) for k, v in tensor_types.items())).encode())
        suffix += f"-mix{digest.hexdigest()[:8]}"
    target = cache_dir() / f"{stem}-{qtype}{suffix}.gguf"
    return target if target.exists() else quantize(base, target, qtype, imatrix=imatrix, tensor_types=tensor_types)
