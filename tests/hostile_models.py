"""Hostile model files for the tests: live pickles, tampered manifests,
arrays that claim terabytes, zip bombs. Built from a real model file."""

import io
import json
import zipfile
from pathlib import Path

import numpy as np


class Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def read_members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path, contents, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in contents.items():
            archive.writestr(name, content)
    return Path(path)


def rewrite(path, *, manifest=None, members=None, drop=(), name="tampered.sgm"):
    """Copy a model file with an edited manifest and/or replaced members."""
    contents = read_members(path)
    data = json.loads(contents["manifest.json"])
    if manifest is not None:
        manifest(data)
    contents["manifest.json"] = json.dumps(data).encode()
    contents.update(members or {})
    for member in drop:
        del contents[member]
    return write_members(Path(path).with_name(name), contents)


def find(node, predicate):
    """The first JSON object of the manifest for which ``predicate`` holds."""
    if isinstance(node, dict):
        if predicate(node):
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = find(child, predicate)
        if found is not None:
            return found
    return None


def first_float_array(data):
    """The ``[member, dtype, shape]`` of the manifest's first float64 array."""
    return find(
        data, lambda node: "__array__" in node and node["__array__"][1] == "<f8"
    )["__array__"]


def npy_header(shape, descr="<f8"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
    )
    return buffer.getvalue()


def declare_array(path, shape, *, in_manifest=True, name="huge.sgm"):
    """A copy whose first float64 array declares ``shape`` in its ``.npy``
    header (and, with ``in_manifest``, in the manifest) while its data stay
    the few bytes they were."""
    member, _, stored = first_float_array(
        json.loads(read_members(path)["manifest.json"])
    )
    content = npy_header(shape) + b"\0" * 8 * int(np.prod(stored))

    def declare(data):
        if in_manifest:
            first_float_array(data)[2] = list(shape)

    return rewrite(path, manifest=declare, members={member: content}, name=name)


def zip_bomb(path, *, padding=2**26, name="bomb.sgm"):
    """A copy whose manifest is padded with ``padding`` bytes of JSON
    whitespace, every member deflated: 64 MiB become about 64 KiB."""
    contents = read_members(path)
    contents["manifest.json"] += b" " * padding
    return write_members(Path(path).with_name(name), contents, zipfile.ZIP_DEFLATED)


def traced_peak(function):
    """Peak memory Python and numpy allocate while ``function`` runs."""
    import tracemalloc

    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak
