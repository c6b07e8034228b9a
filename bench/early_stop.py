"""What twotower.patience would have changed on finished runs: replays their validation curves.

Every two-tower model keeps its best epoch's weights (lowest validation loss), and the epochs are
deterministic, so stopping after `patience` epochs without a lower loss yields the same model
exactly when the replayed stop keeps the same best epoch. This reads every two-tower curve.json
under WORKDIR (runs trained with patience 0, e.g. a `bench/quality.py` workdir: final models,
ensemble members, tuning trials, the 2T baseline) and prints, per patience, how many curves keep
their best epoch and the share of epochs saved. Appends the table to bench/RESULTS.md.

    .venv/bin/python bench/early_stop.py --workdir /tmp/exp/suite [--patience 1,2,3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from pathlib import Path


def replay(losses: list[float], patience: int) -> tuple[int, int]:
    """(best epoch, epochs trained) had training stopped after `patience` epochs without a lower
    loss; the loop of colisten.twotower.train."""
    best = None
    for done in range(len(losses)):
        if best is not None and done - best >= patience:
            return best, done
        if best is None or losses[done] < losses[best - 1]:
            best = done + 1
    return best or 0, len(losses)


def two_tower_curves(workdir: Path) -> list[tuple[Path, list[float]]]:
    """Each two-tower curve (a list of epoch rows with val_loss) under `workdir`."""
    found = []
    for path in sorted(workdir.rglob("curve.json")):
        rows = json.loads(path.read_text())
        if isinstance(rows, list) and rows and "val_loss" in rows[0]:
            losses = [r["train_loss"] if r["val_loss"] is None else r["val_loss"] for r in rows]
            found.append((path, losses))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--patience", default="1,2,3")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    curves = two_tower_curves(args.workdir)
    if not curves:
        sys.exit(f"{args.workdir}: no two-tower curve.json found")
    full = sum(len(c) for _, c in curves)
    lines = [
        f"{len(curves)} two-tower curves under {args.workdir}, {full} epochs trained",
        "",
        "| patience | same best epoch | epochs trained | saved |",
        "|---|---|---|---|",
    ]
    for p in (int(v) for v in args.patience.split(",")):
        outcomes = [(replay(c, p), replay(c, len(c))) for _, c in curves]
        same = sum(stop[0] == every[0] for stop, every in outcomes)
        trained = sum(stop[1] for stop, _ in outcomes)
        lines.append(f"| {p} | {same} / {len(curves)} | {trained} | {1 - trained / full:.0%} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        results = Path(__file__).with_name("RESULTS.md")
        stamp = dt.date.today().isoformat()
        command = "bench/early_stop.py " + " ".join(sys.argv[1:])
        with results.open("a") as f:
            f.write(
                f"\n## Two-tower early stopping replayed on finished runs, {stamp}\n\n"
                f"- machine: {platform.node()}, {platform.processor() or platform.machine()}\n"
                f"- command: `.venv/bin/python {command}`\n\n{text}\n"
            )


if __name__ == "__main__":
    main()
