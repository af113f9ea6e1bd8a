"""Remove widget placeholders from stored notebook outputs: python tests/strip_widgets.py notebooks/*.ipynb.

Run after executing a notebook for the repository (papermill): a static renderer shows a widget's output as an
empty placeholder, so explorer cells store nothing (they are tagged nbval-ignore-output) and the static
small-multiples figure beside them carries the content.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WIDGET = "application/vnd.jupyter.widget-view+json"


def strip(path: Path) -> int:
    """Drop widget outputs and widget state from one notebook in place; returns how many outputs went."""
    nb = json.loads(path.read_text())
    dropped = 0
    for cell in nb["cells"]:
        outputs = cell.get("outputs", [])
        kept = [o for o in outputs if WIDGET not in o.get("data", {})]
        dropped += len(outputs) - len(kept)
        if outputs:
            cell["outputs"] = kept
    nb["metadata"].pop("widgets", None)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return dropped


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(name, strip(Path(name)), "widget outputs removed")
