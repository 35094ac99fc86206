"""How a picture was made, in the words a member or a CLI user chose: the JSON that every PNG
the bot or `nst` writes carries (see `images.encode_image`), and that `nst info` prints."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata

from nst_engine.errors import ImageError
from nst_engine.options import StyleOptions

try:
    VERSION = metadata.version("nst-discord")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "unknown"


def artwork_label(data: bytes) -> str:
    """Names an artwork by its content: ``sha256:`` and the first 16 hex digits."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def parameters(
    options: StyleOptions,
    *,
    quality: str,
    size: int,
    styles: list[str],
    weights: str,
    blend: float | None = None,
    parent: dict[str, object] | None = None,
) -> dict[str, object]:
    """The parameters of a finished picture: enough to make it again from the same inputs.

    ``styles`` names each artwork (`artwork_label`, or ``saved:NAME`` for a server's saved
    style); ``weights`` is the result's weights label ("random" says it is not a real transfer);
    ``parent``, a continuation's parent (`nst_engine.continuation.parent_link`).
    """
    made: dict[str, object] = {
        "strength": options.strength,
        "quality": quality,
        "size": size,
        "steps": options.steps,
        "seed": options.seed,
        "preserve_colors": options.preserve_colors,
        "blend": blend,
        "styles": styles,
        "weights": weights,
        "version": VERSION,
    }
    if parent is not None:
        made["parent"] = parent
    return made


def parse_parameters(raw: str | None, *, problem: str) -> dict[str, object] | None:
    """The parameters a file carries as JSON text (None when it carries none).

    Raises:
        ImageError: ``problem`` (one line), when the text is not a JSON object.
    """
    if raw is None:
        return None
    try:
        parameters = json.loads(raw)
    except ValueError:
        parameters = None
    if not isinstance(parameters, dict):
        raise ImageError(problem)
    return parameters
