"""The pickle-free archive reader: bounds and allowlist checked before use."""

import math
import zipfile
from functools import partial

import numpy as np
import torch
from sklearn.pipeline import Pipeline

from ..utils._nets import (
    available_device,
    estimator_net,
    is_stored_net_param,
    load_weights,
)
from ..utils._sklearn_compat import InvalidParameterError
from ._fitted import (
    FittedValueError,
    check_fitted,
    check_pipeline,
    unknown_attributes,
)
from ._format import (
    ARRAY_KINDS,
    ARRAY_MEMBER,
    ATTRIBUTE_NAME,
    CACHE_PARAMS,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_KEYS,
    MAX_MANIFEST_BYTES,
    THIS_VERSION,
    ModelFileError,
    allowed_estimators,
    init_parameters,
    is_plain_item,
    major_minor,
    manifest_problem,
    parse_manifest,
    short,
    tensor_dtypes,
)
from ._network_size import check_network_size

__all__ = ["read_archive"]

TENSOR_DTYPES = tensor_dtypes()
_READ_CHUNK = 2**18


def read_archive(path):
    """The model in the zip archive at ``path``; ModelFileError if refused."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _Reader(archive, path).load()
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, RecursionError) as exc:
        raise ModelFileError(
            f"Model file {path!r} is damaged: {type(exc).__name__}: {exc}"
        ) from exc


class _Reader:
    """Rebuilds a model from an open archive, refusing anything unexpected."""

    def __init__(self, archive, path):
        self.archive = archive
        self.path = path
        self.referenced = set()
        self._allowed = allowed_estimators()

    def error(self, message):
        return ModelFileError(f"Model file {self.path!r}: {message}")

    def load(self):
        names = self.archive.namelist()
        if MANIFEST not in names:
            raise self.error(
                "no manifest.json: this is not a sklearn-gastric model file (a "
                "torch.save or other archive is refused: it may hold a pickle)."
            )
        if len(set(names)) != len(names):
            raise self.error("the archive holds duplicate member names.")
        for info in self.archive.infolist():
            self._check_member_size(info)
        manifest = self._read_manifest()
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise self.error(
                f"manifest.json does not declare the format {FORMAT_NAME!r}."
            )
        self._check_versions(manifest)
        unknown = sorted(set(manifest) - set(MANIFEST_KEYS))
        if unknown:
            raise self.error(
                f"manifest.json has the unknown key(s) {short(unknown)}; a model "
                f"file's manifest holds {', '.join(MANIFEST_KEYS)} only."
            )
        if "model" not in manifest:
            raise self.error("manifest.json holds no model.")
        # Building a network draws initial weights (then replaced): leave
        # the caller's torch random state as it was.
        with torch.random.fork_rng(devices=[]):
            model = self.decode(manifest["model"], "model")
        unused = sorted(set(names) - self.referenced - {MANIFEST})
        if unused:
            listed = ", ".join(unused[:3]) + (", ..." if len(unused) > 3 else "")
            raise self.error(
                f"{len(unused)} member(s) are not referenced by the manifest "
                f"({listed})."
            )
        return model

    def _read_manifest(self):
        """The parsed manifest, its bytes bounded before they are parsed."""
        data = self.archive.read(MANIFEST)
        problem = manifest_problem(data)
        if problem is not None:
            raise self.error(f"manifest.json {problem}.")
        text = data.decode("ascii")
        # Its only reference: the bytes are freed before parsing begins.
        del data
        try:
            return parse_manifest(text)
        except ValueError as exc:
            # JSONDecodeError, a number of more than 4300 digits, NaN.
            raise self.error(f"manifest.json is not valid JSON ({exc}).") from None
        except RecursionError:
            raise self.error("manifest.json is nested too deeply.") from None

    def _check_member_size(self, info):
        """Refuse, before reading it, a member that could take more memory
        than the file's own size (arrays) or than the manifest bound."""
        name = info.filename
        if name == MANIFEST:
            if info.file_size > MAX_MANIFEST_BYTES:
                raise self.error(
                    f"manifest.json would take {info.file_size} bytes once "
                    f"decompressed, more than the {MAX_MANIFEST_BYTES} a model "
                    "file's manifest may (a zip bomb, or not a model file)."
                )
            return
        if not ARRAY_MEMBER.fullmatch(name):
            raise self.error(
                f"unexpected member {name!r}; a model file holds only "
                "manifest.json and arrays/*.npy."
            )
        if info.compress_type != zipfile.ZIP_STORED or (
            info.file_size != info.compress_size
        ):
            raise self.error(
                f"{name!r} is compressed; a model file stores its arrays "
                "uncompressed, so that they never take more memory than the "
                "file (a compressed member may be a zip bomb)."
            )

    def _check_versions(self, manifest):
        file_format = manifest.get("format_version")
        if not isinstance(file_format, int) or isinstance(file_format, bool):
            raise self.error("manifest.json has no integer format_version.")
        made_by = manifest.get("sklearn_gastric_version")
        file_version = major_minor(made_by)
        if file_version is None:
            raise self.error("manifest.json has no valid sklearn_gastric_version.")
        this = THIS_VERSION
        if file_version[0] > this[0] or file_format > FORMAT_VERSION:
            raise self.error(
                f"made by sklearn-gastric {file_version[0]}.{file_version[1]} "
                f"(model format {file_format}); this is {this[0]}.{this[1]} "
                f"(model format {FORMAT_VERSION}): upgrade sklearn-gastric to "
                "load it."
            )

    def decode(self, value, where, owner=None):
        """The value a manifest node describes; ``owner`` is the estimator
        whose fitted attribute it is (it rebuilds a network)."""
        if value is None or isinstance(value, bool | str | int | float):
            return value
        if isinstance(value, list):
            return [self.decode(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if not isinstance(value, dict) or len(value) != 1:
            raise self.error(f"{where}: malformed value {short(value)}.")
        ((tag, content),) = value.items()
        decoder = {
            "__float__": self._decode_float,
            "__scalar__": self._decode_scalar,
            "__tuple__": self._decode_tuple,
            "__dict__": self._decode_dict,
            "__array__": self._decode_array,
            "__object_array__": self._decode_object_array,
            "__tensor__": self._decode_tensor,
            "__random_state__": self._decode_random_state,
            "__estimator__": self._decode_estimator,
            "__skorch_net__": partial(self._decode_net, owner=owner),
        }.get(tag)
        if decoder is None:
            raise self.error(f"{where}: unknown tag {tag!r}.")
        return self._rebuild(tag, partial(decoder, content, where), where)

    def _rebuild(self, tag, build, where):
        """``build()``; what a malformed node makes it raise, a ModelFileError."""
        try:
            return build()
        except ModelFileError:
            raise
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            AttributeError,
            RuntimeError,
        ) as exc:
            raise self.error(
                f"{where}: cannot rebuild {tag} ({type(exc).__name__}: {exc})."
            ) from exc

    def _decode_float(self, content, where):
        if content not in ("nan", "inf", "-inf"):
            raise self.error(f"{where}: bad float {short(content)}.")
        return float(content)

    def _decode_scalar(self, content, where):
        dtype_str, item = content
        dtype = np.dtype(str(dtype_str))
        if dtype.kind not in "biuf":
            raise self.error(f"{where}: scalar dtype {dtype} is not allowed.")
        if isinstance(item, dict):
            item = self._decode_float(item.get("__float__"), where)
        if not isinstance(item, bool | int | float):
            raise self.error(f"{where}: bad scalar {short(item)}.")
        return dtype.type(item)

    def _decode_tuple(self, content, where):
        if not isinstance(content, list):
            raise self.error(f"{where}: malformed tuple.")
        return tuple(self.decode(content, where))

    def _decode_dict(self, content, where):
        if not isinstance(content, dict):
            raise self.error(f"{where}: malformed dict.")
        return {k: self.decode(v, f"{where}[{k!r}]") for k, v in content.items()}

    def _read_member(self, member, dtype_str, shape, where, out=None):
        """The array stored in ``member``, read into a new array or into
        ``out``, which must then be C-contiguous, of its dtype and shape."""
        if not isinstance(member, str) or not ARRAY_MEMBER.fullmatch(member):
            raise self.error(f"{where}: bad array member {short(member)}.")
        if member in self.referenced:
            raise self.error(f"{where}: array member {member!r} is used twice.")
        try:
            info = self.archive.getinfo(member)
        except KeyError:
            raise self.error(
                f"{where}: the manifest names {member!r}, which the archive lacks."
            ) from None
        self.referenced.add(member)
        with self.archive.open(info) as file:
            dtype, declared_shape, fortran_order = self._read_npy_header(
                file, member, where
            )
            if dtype.str != dtype_str or list(declared_shape) != list(shape):
                raise self.error(
                    f"{where}: {member!r} holds {dtype.str} {list(declared_shape)}; "
                    f"the manifest says {dtype_str} {list(shape)}."
                )
            count = math.prod(declared_shape)
            header_size = file.tell()
            if header_size + count * dtype.itemsize != info.file_size:
                raise self.error(
                    f"{where}: {member!r} declares {dtype.str} "
                    f"{list(declared_shape)} ({count * dtype.itemsize} bytes) but "
                    f"holds {info.file_size - header_size} bytes of data."
                )
            if out is None:
                # Allocated only now: its size is known to match the member's.
                flat = np.empty(count, dtype=dtype)
            elif (
                not fortran_order
                and out.dtype == dtype
                and out.shape == declared_shape
                and out.flags.c_contiguous
            ):
                flat = out.reshape(-1)
            else:
                # Read elsewhere and converted, it would take its size twice.
                order = " in Fortran order" if fortran_order else ""
                raise self.error(
                    f"{where}: {member!r} holds {dtype.str}{order}; the network "
                    f"is {out.dtype.str}, and a model file stores its weights as "
                    "the network holds them."
                )
            if _read_into(file, flat.view(np.uint8)) != flat.nbytes:
                raise self.error(f"{where}: {member!r} is truncated.")
        if out is not None:
            return out
        if fortran_order:
            return flat.reshape(declared_shape[::-1]).T
        return flat.reshape(declared_shape)

    def _read_npy_header(self, file, member, where):
        try:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (ValueError, OSError, SyntaxError) as exc:
            raise self.error(
                f"{where}: {member!r} is not a plain .npy array ({exc})."
            ) from exc
        if (
            dtype.kind not in ARRAY_KINDS
            or dtype.fields is not None
            or dtype.subdtype is not None
        ):
            raise self.error(f"{where}: array dtype {dtype} is not allowed.")
        return dtype, tuple(int(n) for n in shape), bool(fortran_order)

    def _decode_array(self, content, where):
        member, dtype_str, shape = content
        return self._read_member(member, dtype_str, shape, where)

    def _decode_object_array(self, content, where):
        shape, items = content
        if not all(is_plain_item(item) for item in items):
            raise self.error(f"{where}: object arrays hold plain values only.")
        array = np.empty(len(items), dtype=object)
        array[:] = [self.decode(item, where) for item in items]
        return array.reshape([int(n) for n in shape])

    def _decode_tensor(self, content, where, into=None):
        """The tensor a ``__tensor__`` node describes; with ``into`` (a
        tensor of the module being loaded), read into it in place, and
        ``into`` returned."""
        member, dtype_name, shape, requires_grad = content
        dtype = TENSOR_DTYPES.get(dtype_name)
        if dtype is None:
            raise self.error(f"{where}: tensor dtype {short(dtype_name)} not allowed.")
        stored = torch.int16 if dtype == torch.bfloat16 else dtype
        expected = np.dtype(str(torch.empty(0, dtype=stored).numpy().dtype)).str
        if into is not None:
            target = into.detach()
            if target.dtype == torch.bfloat16:
                target = target.view(torch.int16)
            self._read_member(member, expected, shape, where, out=target.numpy())
            return into
        array = self._read_member(member, expected, shape, where)
        tensor = torch.from_numpy(array.copy())
        if dtype == torch.bfloat16:
            tensor = tensor.view(torch.bfloat16)
        return tensor.requires_grad_(bool(requires_grad))

    def _decode_random_state(self, content, where):
        key, keys, position, has_gauss, cached = content
        state = np.random.RandomState()
        state.set_state(
            (
                str(key),
                self.decode(keys, where),
                int(position),
                int(has_gauss),
                float(cached),
            )
        )
        return state

    def _decode_estimator(self, content, where):
        name, params, fitted = content
        cls = self._allowed.get(name) if isinstance(name, str) else None
        if cls is None:
            raise self.error(
                f"{where}: class {short(name)} is not one of the estimators a model "
                f"file can hold ({sorted(self._allowed)}); refusing to load it."
            )
        if not isinstance(params, dict) or not isinstance(fitted, dict):
            raise self.error(f"{where}: malformed estimator {name}.")
        for key in CACHE_PARAMS & set(params):
            if params[key] is not None:
                raise self.error(
                    f"{where}.{key} is set; a model file never sets a cache location."
                )
        kwargs = {
            key: self.decode(value, f"{where}.{key}") for key, value in params.items()
        }
        valid = init_parameters(cls)
        if not set(kwargs) <= valid:
            raise self.error(
                f"{where}: {name} has no parameter(s) {sorted(set(kwargs) - valid)}."
            )
        estimator = cls(**kwargs)
        if hasattr(estimator, "_parameter_constraints"):
            # What fit would refuse, a model file may not smuggle into predict.
            try:
                estimator._validate_params()
            except InvalidParameterError as exc:
                raise self.error(f"{where}: {exc}") from None
        for key in fitted:
            self._check_attribute_name(cls, key, where)
            if key in valid:
                raise self.error(
                    f"{where}: {key!r} is a parameter of {name}, not a fitted "
                    "attribute."
                )
        unknown = unknown_attributes(name, fitted)
        if unknown is not None:
            raise self.error(f"{where}: {unknown}")
        for key, value in fitted.items():
            setattr(estimator, key, self.decode(value, f"{where}.{key}", estimator))
        # What predict would trip on (or silently use), refused now.
        try:
            check_fitted(estimator, name, where)
            if isinstance(estimator, Pipeline):
                check_pipeline(estimator, where)
        except FittedValueError as exc:
            raise self.error(str(exc)) from None
        return estimator

    def _check_attribute_name(self, cls, key, where):
        if (
            not isinstance(key, str)
            or not ATTRIBUTE_NAME.fullmatch(key)
            or key.startswith("__")
            or hasattr(cls, key)
        ):
            raise self.error(
                f"{where}: {short(key)} is not a fitted attribute a model file may set."
            )

    def _decode_net(self, content, where, owner):
        module_name, params, state, history = content
        blueprint = estimator_net(owner)
        if blueprint is None or module_name != blueprint.module.__name__:
            raise self.error(f"{where}: unknown network {short(module_name)}.")
        kwargs = {}
        for key, value in params.items():
            if not is_stored_net_param(key):
                raise self.error(f"{where}: network parameter {key!r} not allowed.")
            kwargs[key] = self.decode(value, f"{where}.{key}")
        # The net its estimator's fit builds, with the stored settings.
        net = estimator_net(owner, **kwargs)
        net.device = available_device(net.device, where, stacklevel=5)
        if not isinstance(state, dict):
            raise self.error(f"{where}: malformed network weights.")
        try:
            check_network_size(net, state)
        except ValueError as exc:
            raise self.error(f"{where}: {exc}") from exc
        net.initialize()
        # Each stored tensor read straight into the module's own (same keys
        # and shapes, checked above): the weights take their size once, not
        # twice. load_weights then gets the module's own tensors back.
        weights = net.module_.state_dict()
        for key, value in state.items():
            place = f"{where}.module_.{key}"
            self._rebuild(
                "__tensor__",
                partial(self._decode_tensor, value["__tensor__"], place, weights[key]),
                place,
            )
        history = self.decode(history, f"{where}.history_")
        try:
            return load_weights(net, weights, history)
        except RuntimeError as exc:
            raise self.error(
                f"{where}: the weights do not fit the network ({exc})."
            ) from exc


def _read_into(file, buffer):
    """Fill the uint8 array ``buffer`` from ``file``; the bytes read.

    In chunks: a zip member's ``readinto`` reads the whole request into a
    temporary bytes object first, which would double the array's memory.
    """
    view = memoryview(buffer)
    done = 0
    while done < len(view):
        chunk = file.read(min(_READ_CHUNK, len(view) - done))
        if not chunk:
            break
        view[done : done + len(chunk)] = chunk
        done += len(chunk)
    return done
