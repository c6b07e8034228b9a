"""Two-tower training step time: learned item vectors (twotower.id_dim) x Adam's implementation.

One step = both towers forward on a batch of 128 (users with 10-200 streamed items each), the
in-batch softmax loss, backward and the optimiser step, on one thread, paper tower sizes and a
demo-sized catalogue (6,000 items). Baseline in the same run: id_dim 0 with torch's default
(foreach) Adam. Appends to bench/RESULTS.md.

    .venv/bin/python bench/twotower_step.py [--steps 40] [--items 6000] [--no-record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from colisten.twotower.model import TwoTowerModel, in_batch_softmax_loss

BATCH, TEXT, HGNN = 128, 384, 128


def step_ms(n_items: int, id_dim: int, fused: bool, steps: int) -> float:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = TwoTowerModel(
        user_dense_dim=TEXT + HGNN + 8,
        user_categorical_sizes=[10, 20],
        item_dense_dim=TEXT + HGNN,
        item_categorical_sizes=[5, 10, 2],
        categorical_dim=16,
        tower_dims=[512, 256, 128],
        n_items=n_items,
        id_dim=id_dim,
    )
    opt = torch.optim.Adam(model.parameters(), 1e-3, fused=fused)
    user_dense, user_cat = torch.randn(BATCH, TEXT + HGNN + 8), torch.randint(0, 5, (BATCH, 2))
    items = torch.from_numpy(rng.choice(n_items, BATCH, replace=False))
    item_dense, item_cat = torch.randn(BATCH, TEXT + HGNN), torch.randint(0, 2, (BATCH, 3))
    lengths = torch.from_numpy(rng.integers(10, 200, BATCH))
    history = (torch.randint(0, n_items, (int(lengths.sum()),)), torch.cumsum(lengths, 0) - lengths)

    def step() -> None:
        u = model.encode_users(user_dense, user_cat, history if id_dim else None)
        v = model.encode_items(item_dense, item_cat, items)
        loss = in_batch_softmax_loss(u, v, items, torch.zeros(BATCH), 0.1, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--items", type=int, default=6000)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for id_dim in (0, 64):
        for fused in (False, True):
            rows.append(
                (
                    id_dim,
                    "fused" if fused else "foreach (default)",
                    step_ms(args.items, id_dim, fused, args.steps),
                )
            )
    base = rows[0][2]
    lines = ["| id_dim | Adam | ms / step | vs id_dim 0, foreach |", "|---|---|---|---|"]
    lines += [f"| {d} | {a} | {ms:.1f} | {ms / base:.2f}x |" for d, a, ms in rows]
    table = "\n".join(lines)
    print(table)
    if args.no_record:
        return
    head = [
        "",
        f"## Two-tower step time (bench/twotower_step.py), {dt.date.today().isoformat()}",
        "",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs; one torch thread",
        f"- command: `.venv/bin/python bench/twotower_step.py --steps {args.steps} --items {args.items}`",
        f"- load average (1 min) at the end: {os.getloadavg()[0]:.1f}"
        + (f"; {args.note}" if args.note else ""),
        "",
    ]
    with open(Path(__file__).resolve().parent / "RESULTS.md", "a") as f:
        f.write("\n".join(head) + "\n" + table + "\n")


if __name__ == "__main__":
    main()
