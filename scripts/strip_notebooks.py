"""Strip outputs and execution counts from notebooks (they are committed without outputs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def strip(path: Path) -> bool:
    nb = json.loads(path.read_text())
    changed = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            changed = True
        cell["outputs"] = []
        cell["execution_count"] = None
    if nb.get("metadata", {}).pop("widgets", None) is not None:
        changed = True
    if changed:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        p = Path(arg)
        if p.exists() and strip(p):
            print(f"stripped {p}")
