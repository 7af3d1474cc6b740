"""The environment variables the sidecar's programs read, and the one place each is read."""

from __future__ import annotations

import os
from typing import Final

ROOT_ENV: Final = "SIDECAR_ROOT"
TOKEN_ENV: Final = "SIDECAR_TOKEN"
REDIS_ENV: Final = "SIDECAR_REDIS_URL"


def env_root() -> str | None:
    """The jobs root from the environment, for the server."""
    return os.environ.get(ROOT_ENV) or None


def env_token() -> str | None:
    """The token from the environment, for the server and ``tail`` (a flag would show in ``ps``)."""
    return os.environ.get(TOKEN_ENV) or None


def env_redis_url() -> str | None:
    """Redis' URL from the environment (it may hold a password: a flag would show in ``ps``)."""
    return os.environ.get(REDIS_ENV) or None
