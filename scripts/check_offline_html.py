"""Fail if an exported HTML file loads anything from the network (scripts, styles, fonts).

`make course` runs it on build/*.html: the course must render offline, so plotly.js is
embedded and widget state is not stored (its renderer would come from a CDN).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REMOTE = re.compile(r"""<(script|link)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)


def remote_loads(html: str) -> list[str]:
    return [m.group(0)[:120] for m in REMOTE.finditer(html)]


if __name__ == "__main__":
    bad = {p: remote_loads(Path(p).read_text(errors="replace")) for p in sys.argv[1:]}
    bad = {p: hits for p, hits in bad.items() if hits}
    for p, hits in bad.items():
        print(f"{p}: loads from the network: {hits[:3]}")
    sys.exit(1 if bad else 0)
