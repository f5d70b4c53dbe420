"""What every admin route checks: the platform admin key, and paths under the models root.

The admin routes load code-bearing weights from the server's disk, so they are closed unless
a platform admin key is configured (LLMOPS_ADMIN_KEY; in development mode also the kit's
DEV_ADMIN_KEY). The key comes as `Authorization: Bearer <key>` or `x-api-key: <key>`.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from fastapi import Request

from llmops_generation.domain.errors import Forbidden, Unauthorized
from llmops_generation.settings import Settings

API_KEY_HEADER = "x-api-key"


def _presented(request: Request) -> list[str]:
    keys = [request.headers.get(API_KEY_HEADER, "")]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        keys.append(token.strip())
    return [k for k in keys if k]


async def require_admin(request: Request) -> None:
    """FastAPI dependency of the /admin router: 401 without a key, 403 with a wrong one."""
    settings: Settings = request.app.state.settings
    accepted = settings.platform_admin_keys()
    if not accepted:
        raise Forbidden("admin routes are disabled: set LLMOPS_ADMIN_KEY on the generation server")
    presented = _presented(request)
    if not presented:
        raise Unauthorized(
            f"admin routes need the platform admin key ('Authorization: Bearer <key>' or "
            f"'{API_KEY_HEADER}')"
        )
    # Every pair is compared (no early exit) in constant time per pair.
    matches = [hmac.compare_digest(p.encode(), a.encode()) for p in presented for a in accepted]
    if not any(matches):
        raise Forbidden("the key is not the platform admin key")


def under_models_root(path: Path, root: Path) -> Path:
    """`path` (absolute, or relative to `root`) resolved, if it lies under `root`; 403 otherwise.

    `..` components are refused outright; symlinks are followed (realpath) before the check, so
    a link inside the root that points outside it is refused too.
    """
    if ".." in path.parts:
        raise Forbidden(f"path {path} contains '..'; give a path under the models root {root}")
    resolved = Path(os.path.realpath(root / path))
    if not resolved.is_relative_to(root):
        raise Forbidden(f"path {path} is outside the models root {root}")
    return resolved
