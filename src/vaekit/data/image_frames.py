"""Which frame of an image of more frames is read, and the words that say so.

An image of more frames (an animated GIF, PNG or WebP, an MPO: a JPEG with more frames) gives its
first frame, the one a viewer shows first, and is counted. An APNG whose default image is not part
of its animation (a hidden default image, shown only by viewers that do not play APNG: Pillow's
frame 0) gives its first animation frame, Pillow's frame 1, as Pillow composes it. One law for an
image folder's files and the explorer's uploads (`vaekit.data.image_decode.pixel_notes`).
"""

from __future__ import annotations

from collections import Counter

from PIL import Image


def first_frame(im: Image.Image, counts: Counter[str], frames: bool = False) -> None:
    """Seek `im` (opened, not loaded) to the frame of it that is read (the module's docstring): an
    image of more frames is counted in `counts` ("first frame"; "hidden default" for an APNG whose
    hidden default image is passed over, to its frame 1). With `frames`, counts["frames"] is set to
    the number of frames of its animation, for one image's note (`pixel_notes`; a GIF's are counted
    by walking its file, a PNG's and an MPO's read from their headers)."""
    if not getattr(im, "is_animated", False):
        return
    counts["first frame"] += 1
    hidden = im.format == "PNG" and bool(im.info.get("default_image"))
    if frames:
        counts["frames"] = int(getattr(im, "n_frames", 1)) - hidden
    if hidden:
        counts["hidden default"] += 1
        im.seek(1)


HIDDEN = "not the default image that only viewers without APNG show"


def frame_note(counts: Counter[str], one: bool) -> str:
    """The frame read of images of more frames (`first_frame`), in words."""
    hidden, frames = counts["hidden default"], counts["frames"]
    if not one:
        note = f"read only the first frame of {counts['first frame']} images of more frames"
        return note + (f" (of {hidden} APNGs their first animation frame, {HIDDEN})" if hidden else "")
    if hidden:
        first = "its one animation frame" if frames == 1 else f"the first of {frames} animation frames"
        return f"read {first}, {HIDDEN}"
    return f"read the first of {frames} frames" if frames else "read its first frame only"
