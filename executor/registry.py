"""The node-type registry: every type by name, found by importing the modules of `executor.nodes`.

A new type is one module under `executor/nodes/` with a `NodeType` subclass decorated
with `@register`; nothing else changes (the engine, validator and editor read the registry).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any, TypeVar

from executor.errors import UnknownNodeType
from executor.nodes.base import NodeType

_T = TypeVar("_T", bound=type[NodeType[Any]])
_TYPES: dict[str, type[NodeType[Any]]] = {}


def register(cls: _T) -> _T:
    """Class decorator: add a node type to the registry under `cls.type`."""
    existing = _TYPES.get(cls.type)
    if existing is not None and existing is not cls:
        raise ValueError(f"node type {cls.type!r} is registered twice ({existing.__module__}, {cls.__module__})")
    _TYPES[cls.type] = cls
    return cls


class Registry:
    """The node types known to this process, each instantiated once."""

    def __init__(self, types: dict[str, NodeType[Any]]) -> None:
        self._types = types

    def get(self, name: str) -> NodeType[Any]:
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(self._types))
            raise UnknownNodeType(f"unknown node type {name!r}; known types: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[NodeType[Any]]:
        return iter(self._types[name] for name in sorted(self._types))

    def describe(self) -> list[dict[str, Any]]:
        """Every type for the editor's palette and forms: metadata, handles and the data's JSON schema."""
        return [
            {
                "type": node_type.type,
                "version": node_type.version,
                "label": node_type.meta.label,
                "category": node_type.meta.category,
                "icon": node_type.meta.icon,
                "help": node_type.meta.help,
                "inputs": [{"name": h.name, "label": h.label, "required": h.required} for h in node_type.inputs],
                "outputs": [{"name": h.name, "label": h.label} for h in node_type.outputs],
                "data_schema": node_type.data_model.model_json_schema(),
            }
            for node_type in self
        ]


def load_registry() -> Registry:
    """Import every module of `executor.nodes` (each registers its types) and return the registry."""
    import executor.nodes as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "base":
            importlib.import_module(f"{package.__name__}.{module.name}")
    return Registry({name: cls() for name, cls in _TYPES.items()})
