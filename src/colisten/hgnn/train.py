"""Training loop of the HGNN, readable top to bottom: data, model, optimiser, epochs, validation,
checkpoints, final embeddings (PAPER.md §3-4).

Choices the paper leaves open, made here: training edges serve both as supervision and for message
passing (as in GraphSAGE's unsupervised loss); each supervision edge is used in one random direction
per epoch; edge weights (co-counts) are ignored, as the paper's graph is unweighted; the final
embeddings use the best model over the graph with all edges, validation edges included.

Generic over node types and relations: the item graph of the pipeline, or a graph with a `user`
node type for the HGNN-w-users baseline, go through the same `fit_hgnn`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from colisten import artifacts
from colisten.config import HGNNConfig
from colisten.device import resolve_device
from colisten.errors import ColistenError
from colisten.graph.store import CoListeningGraph
from colisten.hgnn.edge_sampler import (
    BalancedEdgeSampler,
    EdgeSet,
    HGNNSettingError,
    select_relations,
    split_validation_edges,
)
from colisten.hgnn.model import HeteroGraphSAGE
from colisten.hgnn.neighbor_sampler import NeighborSampler
from colisten.io import save_torch_atomic, write_json_atomic

CHECKPOINT_FORMAT = 1
_BATCH_STREAM = 3
_VALIDATION_STREAM = 4
# Settings that may change between a run and its --resume without changing the result.
_RESUME_FREE_SETTINGS = {"device", "threads"}
# Settings added to HGNNConfig after the checkpoint format, with the behaviour older checkpoints
# had (their defaults today may differ).
_BEFORE_IT_EXISTED = {"edge_weighting": "none", "id_dim": 0}


class ResumeError(ColistenError):
    """A checkpoint that cannot be resumed with the current settings."""


@dataclass
class ValidationSet:
    """Held-out edges ranked each epoch: anchor -> target, per relation (orientation drawn once)."""

    relation: list[str]
    anchor_type: list[str]
    target_type: list[str]
    anchors: list[np.ndarray]
    targets: list[np.ndarray]

    @classmethod
    def draw(cls, validation: dict[str, EdgeSet], max_edges: int, seed: int) -> ValidationSet:
        """Up to `max_edges` held-out edges, an equal share per relation, each in a random direction."""
        rng = np.random.default_rng([seed, _VALIDATION_STREAM])
        rels = [r for r in sorted(validation) if len(validation[r])]
        out = cls([], [], [], [], [])
        per_relation = max(1, max_edges // max(1, len(rels)))
        for rel in rels:
            a, b = rel.split("__")
            edges = validation[rel]
            ids = rng.permutation(len(edges))[:per_relation]
            u, v = edges.u[ids], edges.v[ids]
            flip = rng.random(ids.shape[0]) < 0.5 if a != b else np.zeros(ids.shape[0], bool)
            for is_flipped, (at, tt, an, ta) in ((False, (a, b, u, v)), (True, (b, a, v, u))):
                keep = flip == is_flipped
                if keep.any():
                    out.relation.append(rel)
                    out.anchor_type.append(at)
                    out.target_type.append(tt)
                    out.anchors.append(an[keep])
                    out.targets.append(ta[keep])
        return out

    def __len__(self) -> int:
        return sum(int(a.shape[0]) for a in self.anchors)


def rank_held_out(
    z: dict[str, torch.Tensor],
    validation: ValidationSet,
    known: CoListeningGraph | None = None,
    batch: int = 1024,
) -> dict[str, np.ndarray]:
    """Rank of each held-out target among ALL nodes of its type, per relation (1 = best).

    The anchor itself never competes. With `known` (the graph of all known edges), the anchor's
    other neighbours do not compete either (the "filtered" ranking of link prediction): on a dense
    co-listening graph hundreds of true neighbours would otherwise cap the metric far below 1.
    Ties count against the target (pessimistic), so a collapsed model scores low.
    """
    ranks: dict[str, list[np.ndarray]] = {}
    for rel, at, tt, anchors, targets in zip(
        validation.relation,
        validation.anchor_type,
        validation.target_type,
        validation.anchors,
        validation.targets,
        strict=True,
    ):
        za_all, zt = z[at], z[tt]
        csr = known.csr.get((at, tt)) if known is not None else None
        for lo in range(0, anchors.shape[0], batch):
            a_np = anchors[lo : lo + batch]
            a = torch.from_numpy(a_np).to(zt.device)
            t = torch.from_numpy(targets[lo : lo + batch]).to(zt.device)
            scores = za_all[a] @ zt.T
            true = scores.gather(1, t.unsqueeze(1))
            if at == tt:
                scores[torch.arange(a.shape[0], device=zt.device), a] = float("-inf")
            if csr is not None:
                deg = csr.indptr[a_np + 1] - csr.indptr[a_np]
                rows = np.repeat(np.arange(a_np.shape[0]), deg)
                first = np.cumsum(deg) - deg
                cols = csr.indices[np.arange(int(deg.sum())) + np.repeat(csr.indptr[a_np] - first, deg)]
                scores[torch.from_numpy(rows).to(zt.device), torch.from_numpy(cols).to(zt.device)] = float(
                    "-inf"
                )
            scores.scatter_(1, t.unsqueeze(1), float("-inf"))  # the target competes with the others only
            r = 1 + (scores >= true).sum(1)
            ranks.setdefault(rel, []).append(r.cpu().numpy())
    return {rel: np.concatenate(parts) for rel, parts in ranks.items()}


def link_metrics(ranks: dict[str, np.ndarray], k: int = 10) -> dict[str, Any]:
    """MRR and HR@k per relation, and their macro average over relations (every relation counts once)."""
    per = {
        rel: {"mrr": float(np.mean(1.0 / r)), f"hr@{k}": float(np.mean(r <= k)), "edges": int(r.shape[0])}
        for rel, r in sorted(ranks.items())
    }
    mrr = float(np.mean([m["mrr"] for m in per.values()])) if per else 0.0
    hr = float(np.mean([m[f"hr@{k}"] for m in per.values()])) if per else 0.0
    return {"mrr": mrr, f"hr@{k}": hr, "per_relation": per}


@dataclass
class HGNNResult:
    """Embeddings per node type (float32, unit rows, type-index order) and the training record."""

    embeddings: dict[str, np.ndarray]
    curve: dict[str, Any]
    model: HeteroGraphSAGE
    best_epoch: int
    best_metric: float
    info: dict[str, Any] = field(default_factory=dict)


def fit_hgnn(
    graph: CoListeningGraph,
    features: dict[str, np.ndarray | torch.Tensor],
    settings: HGNNConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> HGNNResult:
    """Train the heterogeneous GraphSAGE on `graph` and embed every node of every type.

    features[t]: input features of type t in type-index order (rows = graph.num_nodes[t]); types
    without any relation are embedded from their features alone. With `out_dir`, writes
    checkpoint.pt (every epoch), best.pt and curve.json there; `resume` continues from
    checkpoint.pt and ends with the same weights as an uninterrupted run. `on_epoch_end` receives
    each epoch's curve entry (after the checkpoint is written).

    On CPU, torch's deterministic algorithms are switched on while training, so that two runs with
    the same seed give the same embeddings whatever the thread count's float-summation order (by
    default multi-threaded scatter sums differ in the last bits, and those bits grow over epochs).
    CUDA runs are left as they are (reproducible up to float error).
    """
    device = resolve_device(device or settings.device, "hgnn.device")
    threads = torch.get_num_threads()
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        if torch.device(device).type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        return _train(graph, features, settings, out_dir, resume, device, progress, on_epoch_end)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


def _train(
    graph: CoListeningGraph,
    features: dict[str, np.ndarray | torch.Tensor],
    settings: HGNNConfig,
    out_dir: str | Path | None,
    resume: bool,
    device: str,
    progress: bool,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
) -> HGNNResult:
    s = settings
    dev = torch.device(device)  # resolved by fit_hgnn
    out = Path(out_dir) if out_dir is not None else None
    _check_features(graph, features)
    if not s.fanouts or any(f < 1 for f in s.fanouts):
        raise HGNNSettingError(f"hgnn.fanouts must be >= 1, one per layer; got {s.fanouts}")
    inference = inference_fanouts(s)

    # --- data: hold-out, supervision sampler, neighbour sampler, validation edges -------------------
    relations = select_relations(graph, s.relations)
    split = split_validation_edges(graph, relations, s.validation_fraction, s.seed)
    edge_sampler = BalancedEdgeSampler(
        {r: len(e) for r, e in split.train.items()},
        mode=s.sampler,
        ratios=s.relation_ratios,
        max_edges_per_epoch=s.max_edges_per_epoch,
        seed=s.seed,
        weights=edge_weights(split.train, s.edge_weighting),
    )
    neighbor_sampler = NeighborSampler(split.train_graph, list(s.fanouts))
    validation = ValidationSet.draw(split.validation, s.validation_edges, s.seed)
    x = {t: torch.as_tensor(np.asarray(f, dtype=np.float32)).to(dev) for t, f in features.items()}
    node_types = sorted(graph.num_nodes)

    # --- model and optimiser -----------------------------------------------------------------------
    torch.manual_seed(s.seed)
    model = HeteroGraphSAGE(
        in_dims={t: int(x[t].shape[1]) for t in node_types},
        edge_types=split.train_graph.edge_types,
        hidden_dim=s.hidden_dim,
        out_dim=s.out_dim,
        num_layers=len(s.fanouts),
        final_activation=s.final_activation,
        dropout=s.dropout,
        id_dim=s.id_dim,
        num_nodes={t: int(x[t].shape[0]) for t in node_types},
    ).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)

    def validate() -> dict[str, Any]:
        z = model.embed_full_graph(split.train_graph, x, fanouts=inference, seed=s.seed)
        return link_metrics(rank_held_out(z, validation, known=split.full_graph))

    state: dict[str, Any] = {"epoch": 0, "best_metric": float("-inf"), "best_epoch": 0, "bad_epochs": 0}
    curve: dict[str, Any] = {"metric": s.validation_metric, "epochs": []}
    best_state: dict[str, torch.Tensor] | None = None
    # nothing to learn from (no edges in the selected relations): items keep their text-only embedding
    done = edge_sampler.edges_per_epoch() == 0
    checkpoint_path = artifacts.HGNN_CHECKPOINT.within(out) if out else None
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        ck = torch.load(checkpoint_path, map_location=dev, weights_only=False)
        _check_resumable(ck, s, checkpoint_path)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"].cpu())  # map_location moved it to the device
        state = ck["state"]
        curve = ck["curve"]
        done = ck["done"]
        if state["best_epoch"] > 0:
            best_path = artifacts.HGNN_BEST.within(out)
            best_state = torch.load(best_path, map_location=dev, weights_only=False)["model"]
    else:
        t0 = time.perf_counter()
        curve["initial"] = {**validate(), "seconds": round(time.perf_counter() - t0, 3)}

    # --- epochs ------------------------------------------------------------------------------------
    bar = tqdm(
        total=s.epochs,
        initial=state["epoch"],
        desc="train-hgnn",
        unit="epoch",
        disable=not progress,
        leave=True,
    )
    while not done and state["epoch"] < s.epochs:
        epoch = state["epoch"] + 1
        t0 = time.perf_counter()
        loss, n_edges = _train_epoch(
            model, optimizer, x, edge_sampler, split.train, neighbor_sampler, s, epoch, dev, progress
        )
        train_seconds = time.perf_counter() - t0
        metrics = validate()
        value = metrics[s.validation_metric]
        improved = value > state["best_metric"]
        state["epoch"] = epoch
        if improved:
            state.update(best_metric=value, best_epoch=epoch, bad_epochs=0)
            best_state = copy.deepcopy(model.state_dict())
        else:
            state["bad_epochs"] += 1
        done = state["bad_epochs"] >= s.patience or epoch >= s.epochs
        entry = {
            "epoch": epoch,
            "loss": loss,
            "edges": n_edges,
            "train_seconds": round(train_seconds, 3),
            "seconds": round(time.perf_counter() - t0, 3),
            **metrics,
        }
        curve["epochs"].append(entry)
        curve.update(best_epoch=state["best_epoch"], best_metric=state["best_metric"])
        if out is not None:
            if improved:
                save_torch_atomic(
                    artifacts.HGNN_BEST.within(out),
                    {
                        "model_config": model.config,
                        "model": best_state,
                        "epoch": epoch,
                        "metric": value,
                        "settings": s.model_dump(mode="json"),
                    },
                )
            save_torch_atomic(
                checkpoint_path,
                {
                    "format": CHECKPOINT_FORMAT,
                    "model_config": model.config,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "state": dict(state),
                    "curve": curve,
                    "done": done,
                    "settings": s.model_dump(mode="json"),
                },
            )
            write_json_atomic(artifacts.HGNN_CURVE.within(out), curve)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", **{s.validation_metric: f"{value:.4f}"}, best=state["best_epoch"])
        if on_epoch_end is not None:
            on_epoch_end(entry)
    bar.close()
    curve["stopped_early"] = bool(curve["epochs"]) and curve["epochs"][-1]["epoch"] < s.epochs
    if not curve["epochs"]:
        curve.update(best_epoch=0, best_metric=None)
    if out is not None:
        write_json_atomic(artifacts.HGNN_CURVE.within(out), curve)

    # --- final embeddings: best model, all edges of the selected relations ---------------------------
    if best_state is not None:
        model.load_state_dict(best_state)
    z = model.embed_full_graph(split.full_graph, x, fanouts=inference, seed=s.seed)
    embeddings = {t: v.float().cpu().numpy() for t, v in z.items()}
    info = {
        "relations": relations,
        "train_edges": {r: len(e) for r, e in split.train.items()},
        "validation_edges": {r: len(e) for r, e in split.validation.items()},
        "edges_per_epoch": edge_sampler.sizes,
        "device": str(dev),
    }
    return HGNNResult(embeddings, curve, model, state["best_epoch"], float(state["best_metric"]), info)


def edge_weights(edges: dict[str, EdgeSet], weighting: str) -> dict[str, np.ndarray] | None:
    """Per relation, the sampling weight of each supervision edge under `hgnn.edge_weighting`: the
    edge's graph weight (its co-count, or its association under graph.association, which may be
    below 1), or its square root."""
    if weighting == "none":
        return None
    power = {"cocount": 1.0, "sqrt_cocount": 0.5}[weighting]
    out = {}
    for r, e in edges.items():
        w = np.asarray(e.weight if e.weight is not None else np.ones(len(e)), dtype=np.float64)
        floor = w[w > 0].min() if np.any(w > 0) else 1.0  # every edge stays drawable
        out[r] = np.power(np.maximum(w, floor), power)
    return out


def inference_fanouts(s: HGNNConfig) -> list[int | None]:
    """The per-layer fan-outs of full-graph inference that `inference_fanouts` stands for."""
    if s.inference_fanouts == "train":
        return list(s.fanouts)
    if s.inference_fanouts == "all":
        return [None] * len(s.fanouts)
    if len(s.inference_fanouts) != len(s.fanouts) or any(f < 1 for f in s.inference_fanouts):
        raise HGNNSettingError(
            f"hgnn.inference_fanouts {s.inference_fanouts} needs one fan-out >= 1 per layer "
            f"(fanouts = {s.fanouts}), or 'train' / 'all'"
        )
    return list(s.inference_fanouts)


def _train_epoch(
    model: HeteroGraphSAGE,
    optimizer: torch.optim.Optimizer,
    x: dict[str, torch.Tensor],
    edge_sampler: BalancedEdgeSampler,
    train_edges: dict[str, EdgeSet],
    neighbor_sampler: NeighborSampler,
    s: HGNNConfig,
    epoch: int,
    dev: torch.device,
    progress: bool = False,
) -> tuple[float, dict[str, int]]:
    """One pass over this epoch's supervision edges; returns the mean max-margin loss.

    Everything random in an epoch comes from (seed, epoch), so a resumed run replays it exactly.
    """
    torch.manual_seed(s.seed * 1_000_003 + epoch)  # dropout
    rng = np.random.default_rng([s.seed, _BATCH_STREAM, epoch])
    node_types = sorted(x)
    code = {t: i for i, t in enumerate(node_types)}
    counts = np.array([x[t].shape[0] for t in node_types], dtype=np.int64)
    # (anchor, positive) pairs of every relation, each edge in a random direction this epoch
    parts = []
    chosen = edge_sampler.epoch_edges(epoch)
    for rel, ids in chosen.items():
        a, b = rel.split("__")
        e = train_edges[rel].take(ids)
        flip = rng.random(ids.shape[0]) < 0.5
        at = np.where(flip, code[b], code[a])
        pt = np.where(flip, code[a], code[b])
        parts.append((at, np.where(flip, e.v, e.u), pt, np.where(flip, e.u, e.v)))
    if not parts or sum(p[0].shape[0] for p in parts) == 0:
        return 0.0, {r: int(v.shape[0]) for r, v in chosen.items()}
    a_type, anchor, p_type, positive = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = rng.permutation(anchor.shape[0])
    a_type, anchor, p_type, positive = a_type[order], anchor[order], p_type[order], positive[order]

    model.train()
    total, n = 0.0, 0
    k = s.negatives
    full_graph = s.training == "full_graph"
    step = s.full_graph_step_edges if full_graph else s.batch_size
    type_offset = np.concatenate([[0], np.cumsum(counts)[:-1]])  # row of a type's node 0 in z_all
    batches = range(0, anchor.shape[0], step)
    for lo in tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not progress):
        hi = lo + step
        at, an, pt, po = a_type[lo:hi], anchor[lo:hi], p_type[lo:hi], positive[lo:hi]
        nt = np.repeat(pt, k)  # negatives: uniform over all nodes of the positive's type
        ng = (rng.random(nt.shape[0]) * counts[nt]).astype(np.int64)
        if full_graph:  # every node, fresh neighbours; then this step's edges are rows of it
            z = model.full_graph_forward(neighbor_sampler.graph, x, s.fanouts, rng)
            z_all = torch.cat([z[t] for t in node_types])
            position = np.concatenate([type_offset[at] + an, type_offset[pt] + po, type_offset[nt] + ng])
        else:  # a sampled computation tree around this batch's distinct nodes
            types = np.concatenate([at, pt, nt])
            nodes = np.concatenate([an, po, ng])
            seeds: dict[str, np.ndarray] = {}
            position = np.empty(nodes.shape[0], dtype=np.int64)
            offset = 0
            for t in node_types:
                mask = types == code[t]
                if not mask.any():
                    continue
                uniq, inv = np.unique(nodes[mask], return_inverse=True)
                seeds[t] = uniq
                position[mask] = offset + inv
                offset += uniq.shape[0]
            sub = neighbor_sampler.sample(seeds, rng)
            ids = {t: torch.from_numpy(v).to(dev) for t, v in sub.node_ids.items()}
            z = model({t: x[t][v] for t, v in ids.items()}, sub.layers, node_ids=ids)
            z_all = torch.cat([z[t] for t in node_types if t in seeds])
        idx = torch.from_numpy(position).to(dev)
        b = at.shape[0]
        za, zp, zn = z_all[idx[:b]], z_all[idx[b : 2 * b]], z_all[idx[2 * b :]].view(b, k, -1)
        pos_score = (za * zp).sum(-1, keepdim=True)
        neg_score = torch.einsum("bd,bkd->bk", za, zn)
        loss = torch.relu(neg_score - pos_score + s.margin).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * b
        n += b
    return total / max(1, n), {r: int(v.shape[0]) for r, v in chosen.items()}


def _check_features(graph: CoListeningGraph, features: dict[str, Any]) -> None:
    for t, n in graph.num_nodes.items():
        if t not in features:
            raise HGNNSettingError(f"no input features for node type {t!r} ({n} nodes)")
        rows = int(features[t].shape[0])
        if rows != n:
            raise HGNNSettingError(
                f"features of node type {t!r} have {rows} rows but the graph has {n} nodes"
            )


def _check_resumable(ck: dict[str, Any], s: HGNNConfig, path: Path) -> None:
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise ResumeError(
            f"{path}: checkpoint format {ck.get('format')} is not {CHECKPOINT_FORMAT}; train afresh"
        )
    # a setting added after the checkpoint was written counts as the behaviour before it existed
    saved = {**HGNNConfig().model_dump(mode="json"), **_BEFORE_IT_EXISTED, **ck.get("settings", {})}
    now = s.model_dump(mode="json")
    changed = sorted(k for k in now if k not in _RESUME_FREE_SETTINGS and saved.get(k) != now[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
        raise ResumeError(f"{path} was written with other hgnn settings ({diffs}); rerun without --resume")
