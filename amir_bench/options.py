"""Command-line options built from config dataclasses, so each option is declared once.

A config field carries its CLI help in `metadata={"help": ...}`; `cli_option(Config, "field")`
turns it into a typer option whose flag is the field name with dashes and whose default is the
field's default. Commands add an option by adding a field and one `cli_option` parameter.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def field_of(cls: type, name: str) -> dataclasses.Field:
    """The dataclass field `name` of `cls` (a typo fails at import, not at run time)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise AttributeError(f"{cls.__name__} has no field {name!r}")


def field_default(cls: type, name: str) -> Any:
    """The declared default of a dataclass field (default or default_factory)."""
    f = field_of(cls, name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise AttributeError(f"{cls.__name__}.{name} has no default")


def _cli_value(value: Any) -> Any:
    """A default as the CLI spells it: tuples of names become a comma-separated string."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def cli_option(cls: type, name: str, *aliases: str, layered: bool = False, **kw: Any) -> Any:
    """A typer option for `cls.name`: flag `--name-with-dashes`, help and default from the field.

    Required fields (no default) become required options. `layered=True` makes the option
    default to None so the caller can tell "not given" from "given" (a preset's default sits
    between the two); the help still names the dataclass default."""
    import typer

    f = field_of(cls, name)
    help_text = f.metadata.get("help", "")
    flags = ("--" + name.replace("_", "-"), *aliases)
    has_default = f.default is not dataclasses.MISSING or \
        f.default_factory is not dataclasses.MISSING
    if not has_default:
        return typer.Option(..., *flags, help=help_text, **kw)
    default = _cli_value(field_default(cls, name))
    if layered:
        return typer.Option(None, *flags, help=f"{help_text} (default: {default})",
                            show_default=False, **kw)
    return typer.Option(default, *flags, help=help_text, **kw)
