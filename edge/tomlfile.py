"""Reading a TOML file with errors in the house shape: `<file>: no such file | cannot read | invalid TOML`."""

from __future__ import annotations

import os
import tomllib
from typing import Any

from edge.exc import ConfigError


def read_toml(path: str | os.PathLike[str], error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """The parsed document; any problem raises `error(file, "", reason)` (ConfigError or a subclass)."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(file, "", "no such file") from None
    except OSError as e:
        raise error(file, "", f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise error(file, "", f"not UTF-8 text (byte {e.start}); save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise error(file, "", f"invalid TOML: {e}") from None
