"""HGNN training time per epoch on CPU and on CUDA, on the same machine (ratios, not absolutes).

Trains the run's HGNN settings for a few epochs with `hgnn.training` = minibatch (the demo's 4,096
edges per epoch) and = full_graph (131,072 edges per epoch), once per device, into a temporary
folder (the run is only read), and reports training seconds per epoch (validation excluded) and the
validation metric reached, so the devices are also seen to learn the same model. Without CUDA only
the CPU rows are measured.

    python bench/hgnn_devices.py --run RUN [--epochs-minibatch 10] [--epochs-full-graph 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from colisten.hgnn.stage import load_item_features
from colisten.hgnn.train import fit_hgnn
from colisten.rundir import RunDir

MODES = (("minibatch", 4096), ("full_graph", 131072))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--run", type=Path, required=True, help="a run directory after `colisten graph` and `embed`"
    )
    ap.add_argument("--epochs-minibatch", type=int, default=10)
    ap.add_argument("--epochs-full-graph", type=int, default=3)
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()

    run = RunDir(args.run)
    base = run.settings().hgnn
    graph, features, _, _ = load_item_features(run)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows, seconds = [], {}
    for mode, edges in MODES:
        epochs = args.epochs_minibatch if mode == "minibatch" else args.epochs_full_graph
        s = base.model_copy(
            update={"training": mode, "max_edges_per_epoch": edges, "epochs": epochs, "patience": epochs + 1}
        )
        for device in devices:
            with tempfile.TemporaryDirectory() as tmp:
                result = fit_hgnn(graph, features, s, out_dir=tmp, device=device, progress=False)
            per_epoch = [e["train_seconds"] for e in result.curve["epochs"]]
            seconds[mode, device] = sum(per_epoch) / len(per_epoch)
            drawn = sum(result.info["edges_per_epoch"].values())  # the cap, or fewer when balanced
            rows.append((mode, drawn, device, epochs, seconds[mode, device], result.best_metric))
            print(f"{mode} {device}: {seconds[mode, device]:.3f} s/epoch", file=sys.stderr)

    lines = [
        "| hgnn.training | edges per epoch | device | epochs | train s/epoch "
        f"| {base.validation_metric} | cpu / cuda |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, edges, device, epochs, sec, metric in rows:
        ratio = f"{seconds[mode, 'cpu'] / sec:.1f}x" if device == "cuda" else ""
        lines.append(f"| {mode} | {edges:,} | {device} | {epochs} | {sec:.3f} | {metric:.4f} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    section = (
        "\n## HGNN epoch time, CPU vs CUDA on one machine (bench/hgnn_devices.py)\n\n"
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), GPU: {gpu}\n"
        f"- command: `python bench/hgnn_devices.py {' '.join(sys.argv[1:])}`\n\n{table}\n"
    )
    with args.results.open("a", encoding="utf-8") as f:
        f.write(section)


if __name__ == "__main__":
    main()
