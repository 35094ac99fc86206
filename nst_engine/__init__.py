"""Neural style transfer (Gatys et al.) on VGG19: the engine, with no knowledge of Discord.

from nst_engine import load_model, stylize, StyleOptions, decode_image
model = load_model("imagenet")          # or a path to the no-top .h5, or "random"
result = stylize(content, style, StyleOptions(strength=7), model=model)
result.image                             # uint8 H×W×3
"""

from nst_engine.errors import ImageError, NSTError, OutOfMemory, WeightsError
from nst_engine.images import decode_image, encode_image, load_image, save_image
from nst_engine.options import Losses, Progress, StyleOptions, StyleResult
from nst_engine.transfer import load_model, stylize

__all__ = [
    "ImageError",
    "Losses",
    "NSTError",
    "OutOfMemory",
    "Progress",
    "StyleOptions",
    "StyleResult",
    "WeightsError",
    "decode_image",
    "encode_image",
    "load_image",
    "load_model",
    "save_image",
    "stylize",
]
