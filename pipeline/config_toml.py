"""`pipeline config`: a configuration written out as annotated TOML, generated from the config models.

The documentation of every key is the attribute docstring of its field (pipeline/config.py, the stages' `*Config`
classes, train/config.py) and the documentation of every table is its model's class docstring, so
`pipeline config --defaults` cannot drift from the code: it is the code's defaults and the code's docs. The attribute
docstrings are read from the source here, when documentation is printed (`field_doc`), rather than by pydantic's
`use_attribute_docstrings` when each model class is created: that walked the stack and parsed source for each of
the 42 config models at every process start (0.11 CPU-s of every `pipeline` command). The output is
valid TOML that loads back to the same configuration; a key whose value is unset (None) is written as a comment,
since TOML has no null and leaving a key out means the same thing.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import math
import re
import textwrap
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: Any) -> str:
    key = str(key)
    return key if _BARE_KEY.match(key) else toml_value(key)


def toml_value(value: Any) -> str:
    """A TOML literal for a config value: booleans, numbers, strings, arrays and inline tables of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's, except DEL, which TOML wants escaped and JSON leaves as it is
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, BaseModel):  # a table inside an array of mixed items (ablate.variants: names or tables)
        return toml_value(value.model_dump())
    raise TypeError(f"no TOML form for {type(value).__name__} value {value!r}")


@functools.cache
def _attribute_docstrings(cls: type) -> dict[str, str]:
    """The string literal right after each annotated attribute in a class body, cleaned as pydantic's
    `use_attribute_docstrings` does."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a class made at run time)
        return {}
    body = ast.parse(source).body[0].body
    docs = {}
    for stmt, after in zip(body, body[1:]):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def field_doc(model: type[BaseModel], name: str) -> str | None:
    """The documentation of a config key: its field's `description` if one was given, else the attribute docstring
    in the class that declares the field (a subclass redeclaring a field, e.g. `enabled`, documents it anew)."""
    description = model.model_fields[name].description
    if description:
        return description
    for cls in model.__mro__:
        if name in vars(cls).get("__annotations__", {}):
            return _attribute_docstrings(cls).get(name)
    return None


def _comment(text: str | None) -> list[str]:
    if not text:
        return []
    return [f"# {line}".rstrip() for line in inspect.cleandoc(text).splitlines()]


def _item_model(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a `list[Model]` field (an array of tables), else None."""
    if typing.get_origin(field.annotation) is not list:
        return None
    (item,) = typing.get_args(field.annotation)
    return item if isinstance(item, type) and issubclass(item, BaseModel) else None


def _table_doc(model: type[BaseModel], doc: str | None) -> list[str]:
    lines = _comment(model.__doc__) if model.__doc__ and model.__doc__ is not BaseModel.__doc__ else []
    if doc and doc != model.__doc__:
        lines += _comment(doc)
    return lines


def _render(obj: BaseModel, path: list[str], out: list[str], header: str | None, doc: str | None) -> None:
    model = type(obj)
    if header is not None:
        out.append("")
        out.extend(_table_doc(model, doc))
        out.append(header)
    tables: list[tuple[str, FieldInfo, Any]] = []
    for name, info in model.model_fields.items():
        value = getattr(obj, name)
        if isinstance(value, BaseModel) or _item_model(info) is not None:
            tables.append((name, info, value))  # TOML: a table's keys come before its sub-tables
            continue
        out.extend(_comment(field_doc(model, name)))
        out.append(f"# {name} = (unset)" if value is None else f"{toml_key(name)} = {toml_value(value)}")
    for name, info, value in tables:
        sub = [*path, name]
        dotted = ".".join(toml_key(p) for p in sub)
        doc = field_doc(model, name)
        if isinstance(value, BaseModel):
            _render(value, sub, out, f"[{dotted}]", doc)
            continue
        if not value:
            _example_item(_item_model(info), doc, dotted, out)
        for item in value:
            _render(item, sub, out, f"[[{dotted}]]", doc)


def _example_item(model: type[BaseModel], doc: str | None, dotted: str, out: list[str]) -> None:
    """An empty array of tables: its keys as comments, so the output still documents them."""
    out.append("")
    out.extend(_table_doc(model, doc))
    out.append(f"# [[{dotted}]]  (none by default; each such table has the keys below)")
    for name, info in model.model_fields.items():
        out.extend(_comment(field_doc(model, name)))
        if info.is_required():
            out.append(f"# {name} = (required)")
        else:
            default = info.get_default(call_default_factory=True)
            out.append(f"# {name} = (unset)" if default is None else f"# {toml_key(name)} = {toml_value(default)}")


def to_toml(cfg: BaseModel, title: str) -> str:
    """`cfg` as annotated TOML: `title` as the opening comment, each key and table with its docs as comments."""
    out = _comment(title)
    _render(cfg, [], out, None, None)
    return "\n".join(out).strip() + "\n"
