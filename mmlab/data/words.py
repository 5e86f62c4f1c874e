"""The spoken vocabulary shared by the build script and the loaders.

The speech clips under `data/speech/` are single words spoken by espeak-ng. The loaders compose
them into phrases: a digit name for `digits`, and a short canonical wording of the caption for
`shapes` ("small red circle top left": size, colour, shape, row, column). The canonical words
are also the factor names of the shapes world, so factor id k is always spoken as word k.
"""

from __future__ import annotations

DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four",
                                "five", "six", "seven", "eight", "nine")
SIZES: tuple[str, ...] = ("small", "medium", "large")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")
ROWS: tuple[str, ...] = ("top", "middle", "bottom")
COLS: tuple[str, ...] = ("left", "center", "right")

SHAPES_SPOKEN_WORDS: tuple[str, ...] = SIZES + COLOURS + SHAPES + ROWS + COLS
VOCABULARY: tuple[str, ...] = DIGIT_WORDS + SHAPES_SPOKEN_WORDS
WORD_ID: dict[str, int] = {w: i for i, w in enumerate(VOCABULARY)}
