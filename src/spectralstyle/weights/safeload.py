"""Reading user-given weights files without running any code they contain.

A pickle can call any importable function while it loads (``os.system`` through ``__reduce__``), and
a TorchScript archive runs its own code inside ``torch.jit.load`` (a crafted ``__setstate__`` can write
files through ``torch.from_file``). So every file goes through one of these, in this order:

- safetensors files: ``safetensors.torch.load_file`` (plain data by design);
- TorchScript archives (OpenAI's ``ViT-B-32.pt`` is one): never ``torch.jit.load``; the archive's
  ``data.pkl`` is read with the restricted unpickler below and its ``data/`` storages as raw bytes,
  so the module tree comes back as inert objects, flattened into a state dict by ``flatten_module_tree``;
- other torch files: ``torch.load(weights_only=True)``; when that refuses a file because it pickles
  other classes beside the tensors (Lightning callbacks, OmegaConf configs), the restricted unpickler.

The restricted unpickler resolves only an allow-list of globals (plain containers, dtypes, torch's tensor
and storage rebuild functions, TorchScript's identity list builders). Every other global becomes a
``Placeholder`` subclass: "calling" it records the arguments, and nothing of the named class is imported
or run. Tensors then load, and the rest of the file is kept as data nobody acts on.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import io
import pickle
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.jit._pickle as torch_jit_pickle

from spectralstyle.errors import WeightsMissingError
from spectralstyle.interrupts import interruptible
from spectralstyle.weights.formats import PICKLE, SAFETENSORS, TAR, ZIP, sniff

TORCHSCRIPT_MARKER = "constants.pkl"  # torch.serialization._is_torchscript_zip tests the same record


class Placeholder:
    """An object of a class the loader would not import: its name, arguments and state, nothing run."""

    module: str = ""
    qualname: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "Placeholder":
        self = super().__new__(cls)
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # pickle's REDUCE calls the class itself
        pass

    def __setstate__(self, state: Any) -> None:  # pickle's BUILD
        self.state = state

    def append(self, item: Any) -> None:  # pickle's APPEND(S) on a list subclass
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:  # pickle's SETITEM(S) on a dict subclass
        self.items.append((key, value))

    def __repr__(self) -> str:
        return f"<not loaded: {self.module}.{self.qualname}>"


def _rebuild_from_type_v2(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    """torch's rebuild of a tensor subclass, for plain tensors and parameters only (no foreign class)."""
    if isinstance(func, type) and issubclass(func, Placeholder) or new_type not in (torch.Tensor, torch.nn.Parameter):
        return Placeholder(func, new_type, args, state)
    return torch._tensor._rebuild_from_type_v2(func, new_type, args, state)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Globals a weights file may use: data types and torch's own tensor, storage and list rebuilders."""

    allowed: dict[tuple[str, str], Any] = {("builtins", name): getattr(builtins, name) for name in (
        "dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str", "bytes", "bytearray")}
    allowed[("__builtin__", "set")] = set  # protocol 0-2 pickles written by Python 2
    allowed[("_codecs", "encode")] = codecs.encode  # how protocol 2 stores bytes
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    allowed[("torch", "Size")] = torch.Size
    allowed[("torch", "device")] = torch.device
    allowed[("torch.serialization", "_get_layout")] = torch.serialization._get_layout
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                 "_rebuild_parameter_with_state"):
        allowed[("torch._utils", name)] = getattr(torch._utils, name)
    allowed[("torch._tensor", "_rebuild_from_type_v2")] = _rebuild_from_type_v2
    allowed[("torch.nn.parameter", "Parameter")] = torch.nn.Parameter
    for name in ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "restore_type_tag"):
        allowed[("torch.jit._pickle", name)] = getattr(torch_jit_pickle, name)  # identity functions
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, (torch.dtype, torch.memory_format)):
            allowed[("torch", name)] = value
        elif name.endswith("Storage") and isinstance(value, type) and issubclass(value, torch.storage._StorageBase
                                                                                   | torch.storage.TypedStorage):
            allowed[("torch", name)] = value
    return allowed


_ALLOWED = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves allow-listed globals and turns every other one into a Placeholder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.placeholders: dict[tuple[str, str], type[Placeholder]] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = (str(module), str(name))
        if key in _ALLOWED:
            return _ALLOWED[key]
        if key not in self.placeholders:
            self.placeholders[key] = type(key[1].rpartition(".")[2] or "Unnamed", (Placeholder,),
                                          {"module": key[0], "qualname": key[1]})
        return self.placeholders[key]


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# What torch.load needs of a pickle module (its legacy format unpickles several pickles in a row).
restricted_pickle = types.SimpleNamespace(__name__="spectralstyle_restricted_pickle", Unpickler=RestrictedUnpickler,
                                          load=_restricted_load, UnpicklingError=pickle.UnpicklingError)


class UnreadableWeights(Exception):
    """Internal: why a file could not be read (turned into one WeightsMissingError line by ``read_weights``)."""


def _read_zip_as_data(path: Path) -> Any:
    """The object in a torch zip archive (``torch.save`` or ``torch.jit.save``) through the restricted unpickler.

    Storages are read from the ``data/<key>`` records as bytes; nothing in ``code/`` is looked at.
    """
    reader = torch._C.PyTorchFileReader(str(path))
    records = set(reader.get_all_records())
    if "data.pkl" not in records:
        raise UnreadableWeights("a zip archive without data.pkl, so not a torch file")
    byteorder = reader.get_record("byteorder").decode() if "byteorder" in records else "little"
    storages: dict[str, torch.UntypedStorage] = {}

    def persistent_load(saved_id: Any) -> Any:
        if not (isinstance(saved_id, tuple) and len(saved_id) == 5 and saved_id[0] in ("storage", b"storage")):
            raise UnreadableWeights(f"an unknown persistent id {str(saved_id)[:40]!r}")
        _, storage_type, key, _location, numel = saved_id
        key = key.decode() if isinstance(key, bytes) else str(key)
        dtype = torch.uint8 if storage_type is torch.UntypedStorage else getattr(storage_type, "dtype", None)
        if not isinstance(dtype, torch.dtype) or not isinstance(numel, int):
            raise UnreadableWeights(f"storage {key} of an unknown type")
        if key not in storages:
            name = f"data/{key}"
            if name not in records:
                raise UnreadableWeights(f"storage record {name} is missing")
            nbytes = numel * torch._utils._element_size(dtype)
            storage = (reader.get_storage_from_record(name, nbytes, torch.UntypedStorage)
                       ._typed_storage()._untyped_storage)
            if byteorder != sys.byteorder:
                storage.byteswap(dtype)
            storages[key] = storage
        return torch.storage.TypedStorage(wrap_storage=storages[key], dtype=dtype, _internal=True)

    unpickler = RestrictedUnpickler(io.BytesIO(reader.get_record("data.pkl")))
    unpickler.persistent_load = persistent_load
    return unpickler.load()


def is_torchscript_archive(path: Path) -> bool:
    """True for a ``torch.jit.save`` archive, by the test ``torch.load`` uses before it hands one to
    ``torch.jit.load``."""
    return TORCHSCRIPT_MARKER in torch._C.PyTorchFileReader(str(path)).get_all_records()


def _read(path: Path, what: str) -> Any:
    kind = sniff(path, what)  # from the first bytes: never a reader that streams the whole file to guess
    if kind == SAFETENSORS:
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if kind == ZIP:
        if is_torchscript_archive(path):
            return _read_zip_as_data(path)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # other classes beside the tensors: load them as placeholders
            return _read_zip_as_data(path)
    if kind == TAR:
        raise UnreadableWeights("a tar archive (torch's pre-0.4 format, which this tool does not read)")
    assert kind == PICKLE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    # weights_only=False is safe here only because every global goes through the restricted unpickler;
    # a TorchScript archive (the case that would reach torch.jit.load) is a zip and was handled above
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)


def read_weights(path: str | Path, what: str) -> Any:
    """The object stored in ``path`` (a dict of tensors, usually), loaded without running code from it.

    ``what`` names the expected kind of file for the one-line error, e.g. "CLIP checkpoint".
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsMissingError(f"{what} file {path} does not exist")
    try:
        with warnings.catch_warnings(), interruptible():  # Ctrl-C/SIGTERM: nothing to save while reading
            warnings.simplefilter("ignore")
            return _read(path, what)
    except WeightsMissingError:
        raise
    except UnreadableWeights as exc:
        reason = str(exc)
    except EOFError:
        reason = "it ends before its data does: cut short"
    except MemoryError:
        reason = "it declares more data than fits in memory"
    except Exception as exc:  # truncated, damaged or foreign: torch's own texts suggest unsafe loading, so not shown
        reason = f"{exc.__class__.__name__}"
    raise WeightsMissingError(f"{path} is not a readable {what} (damaged, truncated or another kind of file: "
                              f"{reason}); check that the file is complete, or give the right file")


def tensors_only(mapping: Any) -> dict[str, torch.Tensor]:
    """The tensor entries of a mapping (a Lightning checkpoint's ``state_dict`` holds only these; others dropped)."""
    if not isinstance(mapping, dict):
        return {}
    return {str(k): v for k, v in mapping.items() if isinstance(v, torch.Tensor)}


def flatten_module_tree(root: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """A TorchScript module tree read as data -> ``{"visual.conv1.weight": tensor, ...}`` (dotted attribute names).

    Modules are Placeholders whose state is their attribute dict; tensors are parameters (traced modules keep
    constants elsewhere); anything else (flags, hook lists) is skipped.
    """
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()

    def walk(node: Any, prefix: str) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        state = node.state if isinstance(node, Placeholder) else node
        if not isinstance(state, dict):
            return
        for key, value in state.items():
            name = f"{prefix}{key}"
            if isinstance(value, torch.Tensor):
                out[name] = value
            elif isinstance(value, Placeholder):
                walk(value, f"{name}.")

    walk(root, prefix)
    return out
