"""2T-HGNN setting variants on the history-only validation split, several model seeds, paired.

How a change to the model is judged before it reaches the real-data suite: the data set's recast
(seeded) is run up to `embed`, the tune stage's validation split is carved from its history, and
2T-HGNN is trained on it once per (variant, model seed) exactly as a tuning trial is (HGNNs shared
between trials with the same graph and HGNN settings). The hold-out is never read. Prints HR@10 of
audiobooks (warm, cold users) and podcasts per variant, the mean over model seeds, and the paired
bootstrap 95% interval of (variant - default): per user, each side's mean over its seeds. Appends
the table to bench/RESULTS.md. A trained trial is cached under --workdir, named by its settings
and a hash of the code (`code_key`), so a later run reuses it only for the same settings and code.

    .venv/bin/python bench/variants.py --dataset ml-100k --model-seeds 0,1,2 \\
        --variant neg512:twotower.sampled_negatives=512 --variant t01:twotower.temperature=0.1
A value is read as JSON (512, true, "per_type") and else kept as a string.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from quality import DATASETS, recast  # bench/quality.py: the suite's data sets and their recast

SEGMENTS = (("audiobook", "warm"), ("audiobook", "cold"), ("podcast", "warm"))


def parse_variant(text: str) -> tuple[str, dict]:
    """'name:key=value,key=value' -> (name, {dotted key: value})."""
    name, _, body = text.partition(":")
    overrides = {}
    for pair in filter(None, body.split(",")):
        key, _, raw = pair.partition("=")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return name.strip(), overrides


def code_key(root: Path | None = None) -> str:
    """A hash of the sources a trial runs: every module of colisten (or `root`) but serve/ (which
    no trial imports), so any change to the data, graph, HGNN, two-tower or evaluation code retrains."""
    if root is None:
        import colisten

        root = Path(colisten.__file__).parent
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] != "serve":
            digest.update(str(rel).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def prepared_run(dataset: str, seed: int, work: Path):
    """The recast (seed) validated, split and embedded in work/, and its validation split."""
    from colisten.config import load_settings
    from colisten.data import stage as data_stage
    from colisten.rundir import RunDir
    from colisten.text import stage as content_stage
    from colisten.tune.validation import carve_validation_split, validation_settings

    data_dir, run_dir = work / f"data-seed{seed}", work / f"run-seed{seed}"
    if not data_dir.exists():
        recast(dataset, data_dir, seed)
    settings = load_settings(None, {"content": {"cache_dir": str(work / "text-cache")}})
    rd = RunDir(run_dir)
    if not (rd / "content").exists():
        rd.root.mkdir(parents=True, exist_ok=True)
        rd.init(settings)
        data_stage.validate(rd, settings, data=data_dir)
        data_stage.split(rd, settings)
        content_stage.run(rd, settings)
    return rd, carve_validation_split(rd, settings), validation_settings(settings)


def per_user(rd, val, vsettings, label: str, overrides: dict) -> pd.DataFrame:
    """One trained variant's per-user HR@10 on the validation truth (trained once, then cached)."""
    from colisten.evaluate.data import load_eval_data
    from colisten.evaluate.harness import build_models, evaluate
    from colisten.tune.search import TrialContext, _slug, _train_chain, _trial_run
    from colisten.tune.spaces import apply_overrides
    from colisten.tune.validation import split_key

    s = apply_overrides(vsettings, overrides)
    trial = _trial_run(rd.root / "variants" / _slug(label), val, s)
    if "train-2t" not in trial.manifest().get("stages", {}):  # best.pt alone may be a killed run's
        context = TrialContext(val.root, vsettings, rd.root, s.data.target_type, split_key(rd), "hr@10")
        _train_chain(trial, s, context)
    frames: list[pd.DataFrame] = []
    evaluate(
        load_eval_data(val.root, s), build_models(trial.root, s, ["2T-HGNN"]), s, bootstrap=0, per_user=frames
    )
    return pd.concat(frames)


def paired(frame: pd.DataFrame, a: str, b: str, it: str, seg: str, rng) -> tuple[float, float, float, float]:
    """(mean a, a - b, 95% low, high): per user, each variant's mean over its model seeds."""
    g = frame[(frame.item_type == it) & (frame.segment == seg) & frame.variant.isin([a, b])]
    piv = g.groupby(["user_id", "variant"])["hr@10"].mean().unstack().dropna()
    d = (piv[a] - piv[b]).to_numpy()
    boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
    return float(piv[a].mean()), float(d.mean()), *np.percentile(boot, [2.5, 97.5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="ml-100k")
    parser.add_argument("--seed", type=int, default=0, help="recast seed (the validation split)")
    parser.add_argument("--model-seeds", default="0,1,2", help="twotower/hgnn seeds per variant")
    parser.add_argument("--variant", action="append", default=[], help="NAME:key=value[,key=value]")
    parser.add_argument(
        "--base",
        default="",
        help="key=value[,key=value] applied to every variant and to the default (e.g. the settings "
        "a tuning chose, so a variant is judged where the suite's model stands)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("bench/_work/variants"))
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    base = parse_variant(f"base:{args.base}")[1]
    own = dict([("default", {})] + [parse_variant(v) for v in args.variant])  # as given, base aside
    variants = {name: {**base, **o} for name, o in own.items()}
    seeds = [int(s) for s in args.model_seeds.split(",")]
    work = args.workdir / args.dataset
    t0 = time.perf_counter()
    rd, val, vsettings = prepared_run(args.dataset, args.seed, work)
    code = code_key()
    frames = []
    for name, overrides in variants.items():
        for m in seeds:
            # the settings and the code in the folder's name: a cached trial is reused only for
            # the same ones (a trial cached by its settings alone silently stood for old code)
            key = hashlib.sha1((json.dumps(overrides, sort_keys=True) + code).encode()).hexdigest()[:8]
            label = f"{name}-m{m}-{key}"
            print(f"training {label} ...", flush=True)
            f = per_user(rd, val, vsettings, label, {**overrides, "twotower.seed": m, "hgnn.seed": m})
            frames.append(f.assign(variant=name, model_seed=m))
    frame = pd.concat(frames)
    rng = np.random.default_rng(0)
    users = {
        (it, seg): frame[(frame.item_type == it) & (frame.segment == seg)].user_id.nunique()
        for it, seg in SEGMENTS
    }
    head = "| variant | " + " | ".join(f"{it} {seg}" for it, seg in SEGMENTS) + " |"
    lines = [head, "|---" * (len(SEGMENTS) + 1) + "|"]
    for name in variants:
        cells = []
        for it, seg in SEGMENTS:
            mean, diff, lo, hi = paired(frame, name, "default", it, seg, rng)
            cells.append(
                f"{mean:.3f}" if name == "default" else f"{mean:.3f} ({diff:+.3f} [{lo:+.3f}, {hi:+.3f}])"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.no_record:
        return
    settings = "; ".join(f"{n}: {json.dumps(o)}" for n, o in own.items() if o) or "defaults only"
    if base:
        settings += f"; every variant and the default on the base {json.dumps(base)}"
    entry = (
        f"\n## 2T-HGNN variants on the validation split (bench/variants.py), {dt.date.today()}\n\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} cores; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n"
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n"
        f"- {args.dataset}, recast seed {args.seed}, validation split (hold-out never read); users: "
        f"{users['audiobook', 'warm']} warm / {users['audiobook', 'cold']} cold audiobook users, "
        f"{users['podcast', 'warm']} podcast users; model seeds {seeds}; "
        f"{time.perf_counter() - t0:.0f} s\n- variants: {settings}\n"
        "- HR@10, mean over model seeds (variant - default, paired 95% bootstrap interval)\n\n"
        f"{table}\n"
    )
    with open(Path(__file__).with_name("RESULTS.md"), "a") as f:
        f.write(entry)


if __name__ == "__main__":
    main()
