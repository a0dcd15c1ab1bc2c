"""Load YAML into typed config and point every error at the file and line that caused it."""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names file, line and field."""


def _line_of(node: yaml.Node, loc: tuple) -> int:
    """Follow a pydantic error location through the YAML node tree to the deepest line known."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = node.value[key]
        else:
            match = None
        if match is None:
            break
        node = match
    return node.start_mark.line + 1


def load_config(path: Path, model: type[Model]) -> Model:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded); save the file as UTF-8") from exc
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if root is None:
        raise ConfigError(f"{path}: the file is empty")
    return validate_config(data, root, model, str(path))


def validate_config(data, root: yaml.Node, model: type[Model], name: str) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if not isinstance(part, str) or not part.startswith("function-"))
            field = ".".join(map(str, loc)) or "(top level)"
            lines.append(f"{name}:{_line_of(root, loc)}: {field}: {error['msg']}")
        raise ConfigError("\n".join(lines)) from exc
