"""Public names whose modules are imported on first use (PEP 562).

The torch-backed estimators and modules are reached through their
package's ``__getattr__``, so that ``import sklearn_gastric`` and the
packages that do not need a network (``io``, ``preprocessing``,
``datasets``, ``visualization``, the command line's parser) never import
torch or skorch.
"""

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package, names, namespace):
    """The ``__getattr__`` and ``__dir__`` of a package with lazy names.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : dict of str to str
        Each lazy name, and the module it is imported from, relative to
        ``package`` (``"._segmenter"``) or absolute.
    namespace : dict
        The package's ``globals()``: a name, once imported, is stored there,
        so that later lookups do not go through ``__getattr__``.

    Returns
    -------
    getattr : callable
        The package's ``__getattr__``: imports the module holding ``name``
        and returns ``name`` from it.
    dir : callable
        The package's ``__dir__``: its eager names and its lazy ones.

    Examples
    --------
    >>> import os.path
    >>> from sklearn_gastric._lazy import lazy_exports
    >>> namespace = {}
    >>> getattr_, dir_ = lazy_exports("os", {"join": "os.path"}, namespace)
    >>> getattr_("join") is os.path.join, "join" in namespace, "join" in dir_()
    (True, True, True)
    """

    def __getattr__(name):
        try:
            module = names[name]
        except KeyError:
            raise AttributeError(
                f"module {package!r} has no attribute {name!r}"
            ) from None
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
