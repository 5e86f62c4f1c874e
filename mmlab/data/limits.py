"""The documented limits on what one file, or one dataset, may cost (docs/ERRORS.md, "Files").

A user's file is checked against these from its header, before anything is decoded, so a tiny
crafted file that declares a huge picture or an absurd sample rate is refused at once (measured in
tests/test_data_media.py: under 50 MB and 1 s each). Options of `load(...)` and `from_folder(...)`
are checked against them before anything is allocated, so a typo such as `audio_seconds=1e9` gives
a ValueError naming the option and the limit instead of a MemoryError.

What an accepted file may cost at most (`scripts/worst_file_cost.py` builds the worst case each
limit allows and measures it; figures in docs/ERRORS.md, "Files"):
    image: up to about 9 bytes × MAX_IMAGE_PIXELS (decode, EXIF rotation, one conversion):
           0.43 GB and under 2 s for a 50-megapixel palette PNG with transparency;
    sound: only the kept clip is decoded (at most MAX_CLIP_SECONDS of it, mixed to mono block by
           block), then resampled: 0.40 GB and under 2 s at MAX_CHANNELS and MAX_SAMPLE_RATE.
"""

from __future__ import annotations

MAX_IMAGE_PIXELS = 50_000_000  # width × height of one image file (a 50-megapixel photo)
MAX_IMAGE_SIZE = 1_024  # `image_size`: the side of the square images a dataset holds
MIN_SAMPLE_RATE = 1_000  # Hz, of a sound file and of the `sample_rate` option
MAX_SAMPLE_RATE = 384_000  # Hz, the highest rate audio interfaces record at
MAX_CHANNELS = 8  # channels of one sound file (7.1 surround)
MAX_FILE_SECONDS = 3_600.0  # the longest sound file accepted (only the kept clip is decoded)
MAX_CLIP_SECONDS = 30.0  # `audio_seconds`: the longest clip a dataset holds
MAX_DATASET_BYTES = 8 * 2**30  # the tensors of one built-in dataset: n × bytes per sample


def check_at_most(name: str, value: float, limit: float, what: str, fix: str = "") -> None:
    """Raise ValueError naming the option `name` when `value` > `limit` (limits.<what>)."""
    if value > limit:
        show = [f"{v:g}" if isinstance(v, float) else str(v) for v in (limit, value)]
        raise ValueError(f"`{name}` must be ≤ {show[0]} (mmlab.data.limits.{what}), "
                         f"got {show[1]}." + (f" {fix}" if fix else ""))


def check_dataset_bytes(n: int, bytes_per_sample: int, options: str) -> None:
    """Refuse a dataset whose tensors would need more than MAX_DATASET_BYTES.

    Args:
        n: the number of samples asked for.
        bytes_per_sample: the bytes one sample's tensors take (all modalities).
        options: the options that set the size, for the message, e.g. "`n` and `audio_seconds`".
    """
    need = n * bytes_per_sample
    if need > MAX_DATASET_BYTES:
        most = MAX_DATASET_BYTES // bytes_per_sample
        raise ValueError(f"{options} ask for {need / 2**30:.1f} GiB of tensors ({n:,} samples × "
                         f"{bytes_per_sample:,} bytes), more than the limit of "
                         f"{MAX_DATASET_BYTES / 2**30:g} GiB "
                         f"(mmlab.data.limits.MAX_DATASET_BYTES); use n ≤ {most:,} with these "
                         "options.")
