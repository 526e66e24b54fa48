"""A config dataclass as command-line flags: one flag per field (nested sections flattened), the
field's trailing `# comment` as its help, and the flags a user typed back as a nested dict for
`config.from_dict`. Generic over any dataclass (it takes only `field_types` from config); the CLI
builds its parsers with it and the app's form takes its help texts from `field_comments`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import typing
from typing import Any

from .config import field_types


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted name, type, default) for every non-dataclass field, nested sections flattened."""
    out = []
    types = field_types(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(types[f.name]):
            out += _leaves(types[f.name], prefix + f.name + ".")
        else:
            out.append((prefix + f.name, types[f.name], getattr(instance, f.name)))
    return out


# When two sections share a field name, the section named here keeps the short flag
# (`--seed` is the training seed; the masking seed is `--masking-seed`).
_SHORT_FLAG_OWNER = {"seed": "train.seed"}


@functools.lru_cache(maxsize=None)  # read once per class: every parser build asks again for each of its flags
def field_comments(cls: type) -> dict[str, str]:
    """{field: its trailing `# comment`} from a dataclass's source: the comments written for readers
    of workbench/config.py double as the CLI's --help, so each field is explained once."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source shipped: flags still work, with shorter help
        return {}
    found = re.findall(r"^\s+(\w+):[^#\n]*#\s*(.+)$", source, flags=re.M)
    return {name: text.strip() for name, text in found}


def _help(dotted: str, cls: type, default: Any) -> str:
    section = cls
    for part in dotted.split(".")[:-1]:
        section = field_types(section)[part]
    comment = field_comments(section).get(dotted.rsplit(".", 1)[-1], "")
    shown = "none" if default is None or default == [] else default
    return f"{comment + '; ' if comment else ''}default {shown} [{dotted}]".replace("%", "%%")


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of `cls` (nested sections flattened), with the field's comment as its
    help. Defaults stay None so that only flags the user typed override a preset or a config file."""
    leaves = _leaves(cls)
    counts: dict[str, int] = {}
    for dotted, _, _ in leaves:
        counts[dotted.rsplit(".", 1)[-1]] = counts.get(dotted.rsplit(".", 1)[-1], 0) + 1
    for dotted, t, default in leaves:
        name = dotted.rsplit(".", 1)[-1]
        if dotted in skip or any(dotted.startswith(prefix + ".") for prefix in skip):
            continue
        if counts[name] > 1 and _SHORT_FLAG_OWNER.get(name) != dotted:
            flag = "--" + dotted.replace(".", "-").replace("_", "-")
        else:
            flag = _flag(name)
        base = _base_type(t)
        help_text = _help(dotted, cls, default)
        if base is bool:
            parser.add_argument(flag, dest=dotted, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif base is list:
            parser.add_argument(flag, dest=dotted, nargs="+", default=None, help=help_text, metavar=name.upper())
        else:
            parser.add_argument(flag, dest=dotted, type=base, default=None, help=help_text, metavar=name.upper())


def _base_type(t: Any) -> type:
    origin = typing.get_origin(t)
    if origin is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return _base_type(args[0])
    if origin is list:
        return list
    return t if isinstance(t, type) else str


def overrides_from_args(args: argparse.Namespace, cls: type) -> dict:
    """Collect the flags the user typed into a nested dict for `config.from_dict`."""
    out: dict = {}
    for dotted, _, _ in _leaves(cls):
        value = getattr(args, dotted, None)
        if value is None:
            continue
        *sections, name = dotted.split(".")
        target = out
        for sec in sections:
            target = target.setdefault(sec, {})
        target[name] = value
    return out
