#!/usr/bin/env python3
"""Print one line per run found under the given folders: regime, alpha, final and best test metrics.

Usage: python scripts/compare_runs.py RUNS_DIR [RUNS_DIR ...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folders: list[str]) -> int:
    paths = sorted(p for folder in folders for p in Path(folder).rglob("summary.json"))
    if not paths:
        print(f"no summary.json under {', '.join(folders)}; train some runs first", file=sys.stderr)
        return 1
    header = f"{'dataset':<9} {'model':<15} {'mixup':<9} {'alpha':>5} {'seed':>4} {'epochs':>6}  " \
             f"{'test error %':>12} {'test NLL':>8} {'ECE':>6}  {'best error %':>12} {'@epoch':>6}"
    print(header)
    print("-" * len(header))
    for path in paths:
        s = json.loads(path.read_text())
        final, best = s["final"] or {}, s["best"] or {}
        alpha = "-" if s["alpha"] is None else f"{s['alpha']:g}"
        status = "" if s["finished"] else f"  (unfinished: {s['epochs_done']}/{s['epochs']})"
        print(f"{s['dataset']:<9} {s['model']:<15} {s['mixup']:<9} {alpha:>5} {s['seed']:>4} {s['epochs_done']:>6}  "
              f"{final.get('error', float('nan')):>12.2f} {final.get('nll', float('nan')):>8.4f} "
              f"{final.get('ece', float('nan')):>6.3f}  {best.get('error', float('nan')):>12.2f} "
              f"{best.get('epoch', 0):>6}{status}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["runs"]))
