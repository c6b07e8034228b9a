"""Training loop of the HGNN, readable top to bottom: data, model, optimiser, epochs, validation,
checkpoints, final embeddings (PAPER.md §3-4).

Choices the paper leaves open, made here: training edges serve both as supervision and for message
passing (as in GraphSAGE's unsupervised loss); each supervision edge is used in one random direction
per epoch; edge weights (co-counts) are ignored, as the paper's graph is unweighted; the final
embeddings use the best model over the graph with all edges, validation edges included.

Generic over node types and relations: the item graph of the pipeline, or a graph with a `user`
node type for the HGNN-w-users baseline, go through the same `fit_hgnn`.

Data-parallel (`train-hgnn --nproc N`, colisten.hgnn.distributed): every rank runs `fit_hgnn`.
The epoch's supervision edges, their order, the global batches of hgnn.batch_size edges and their
negatives are those of one process (functions of (seed, epoch)); each rank takes a contiguous slice
of every global batch and samples its own neighbours (its own random stream), DistributedDataParallel
averages the gradients of the shares so that a step is the gradient of the global batch's mean loss.
Rank 0 alone validates and writes. One process draws a batch's neighbours in one go, N ranks each
for their slice: the same model in distribution, not bit for bit (`_shares` says which slices a
process computes; one process computing every rank's slice reproduces an N-rank run).
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
from colisten.ddp import check_same_data, fail_here, from_rank_0, rank_and_world, rank_device
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
_SHARE_STREAM = 5  # under DDP: each share's neighbour draws and dropout
# Test hook (colisten.ddp.fail_here): "RANK:EPOCH" makes that DDP rank exit halfway through that epoch.
FAIL_AT_ENV = "COLISTEN_HGNN_FAIL_AT"
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

    Under DDP (a process group is up) every rank calls this: it trains its share of every global
    batch (on cuda:LOCAL_RANK with CUDA), and rank 0 alone validates, writes to `out_dir`, calls
    `on_epoch_end` and returns the embeddings (the other ranks return none).
    """
    device = rank_device(resolve_device(device or settings.device, "hgnn.device"))
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
    rank, world = rank_and_world()
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
    batch_loss = _BatchLoss(model, x, neighbor_sampler, s)

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
        if state["best_epoch"] > 0 and rank == 0:
            best_path = artifacts.HGNN_BEST.within(out)
            best_state = torch.load(best_path, map_location=dev, weights_only=False)["model"]
    elif rank == 0:
        t0 = time.perf_counter()
        curve["initial"] = {**validate(), "seconds": round(time.perf_counter() - t0, 3)}
    step_loss: torch.nn.Module = batch_loss
    if world > 1:  # after the checkpoint is loaded: every rank starts from the same state
        from torch.nn.parallel import DistributedDataParallel

        check_same_data(*_fingerprint(s, split.train, x))
        # every parameter takes part in every share (_BatchLoss every_parameter), so DDP needs no
        # search for unused ones (find_unused_parameters: a graph traversal per step)
        step_loss = DistributedDataParallel(
            batch_loss, device_ids=[dev.index] if dev.type == "cuda" else None
        )

    # --- epochs ------------------------------------------------------------------------------------
    bar = tqdm(
        total=s.epochs,
        initial=state["epoch"],
        desc="train-hgnn",
        unit="epoch",
        disable=not progress or rank != 0,
        leave=True,
    )
    while not done and state["epoch"] < s.epochs:
        epoch = state["epoch"] + 1
        t0 = time.perf_counter()
        loss, n_edges = _train_epoch(
            step_loss, optimizer, edge_sampler, split.train, s, epoch, dev, progress and rank == 0
        )
        train_seconds = time.perf_counter() - t0
        if rank != 0:  # rank 0 validates, writes and tells the others whether to go on
            state["epoch"] = epoch
            done = from_rank_0(False, dev)
            continue
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
        if world > 1:
            from_rank_0(done, dev)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", **{s.validation_metric: f"{value:.4f}"}, best=state["best_epoch"])
        if on_epoch_end is not None:
            on_epoch_end(entry)
    bar.close()
    if rank != 0:
        return HGNNResult({}, curve, model, state["best_epoch"], float(state["best_metric"]), {})
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
    step_loss: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    edge_sampler: BalancedEdgeSampler,
    train_edges: dict[str, EdgeSet],
    s: HGNNConfig,
    epoch: int,
    dev: torch.device,
    progress: bool = False,
) -> tuple[float, dict[str, int]]:
    """One pass over this epoch's supervision edges; returns the mean max-margin loss.

    `step_loss` is the _BatchLoss of the model, or under DDP its DistributedDataParallel wrapper.
    Everything random in an epoch comes from (seed, epoch), so a resumed run replays it exactly.
    """
    batch_loss: _BatchLoss = getattr(step_loss, "module", step_loss)
    model = batch_loss.model
    torch.manual_seed(s.seed * 1_000_003 + epoch)  # dropout
    rng = np.random.default_rng([s.seed, _BATCH_STREAM, epoch])
    code = batch_loss.code
    counts = batch_loss.counts
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
    step = s.full_graph_step_edges if s.training == "full_graph" else s.batch_size
    batches = range(0, anchor.shape[0], step)
    rank, world = rank_and_world()
    mine, n_shares = _shares()
    # under DDP each share draws its neighbours from its own stream (one process: from `rng`)
    share_rng = {r: np.random.default_rng([s.seed, _SHARE_STREAM, epoch, r]) for r in mine}
    for j, lo in enumerate(
        tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not progress)
    ):
        hi = lo + step
        at, an, pt, po = a_type[lo:hi], anchor[lo:hi], p_type[lo:hi], positive[lo:hi]
        nt = np.repeat(pt, k)  # negatives: uniform over all nodes of the positive's type
        ng = (rng.random(nt.shape[0]) * counts[nt]).astype(np.int64)
        b = at.shape[0]
        if n_shares == 1:
            loss = step_loss(at, an, pt, po, nt, ng, rng).mean()
        else:  # this process's contiguous slice(s) of the global batch
            if b < n_shares:  # a last batch smaller than the ranks: every rank needs a row
                continue
            fail_here(FAIL_AT_ENV, rank, epoch, j, len(batches))
            cut = [r * b // n_shares for r in range(n_shares + 1)]
            shares = []
            for r in mine:
                rows, negs = slice(cut[r], cut[r + 1]), slice(cut[r] * k, cut[r + 1] * k)
                torch.manual_seed(_share_seed(s.seed, epoch, j, r))  # dropout
                hinge = step_loss(
                    at[rows],
                    an[rows],
                    pt[rows],
                    po[rows],
                    nt[negs],
                    ng[negs],
                    share_rng[r],
                    every_parameter=True,
                )
                # this share's part of the batch's mean, times world: DDP averages the ranks' gradients
                shares.append(hinge.sum() * (world / (b * k)))
            loss = shares[0] if len(shares) == 1 else torch.stack(shares).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * b / world  # under DDP: this rank's part, summed below
        n += b
    if world > 1:
        summed = torch.tensor([total], dtype=torch.float64, device=dev)
        torch.distributed.all_reduce(summed)
        total = float(summed.item())
    return total / max(1, n), {r: int(v.shape[0]) for r, v in chosen.items()}


class _BatchLoss(torch.nn.Module):
    """The max-margin hinge terms [rows, negatives] of a batch of (anchor, positive, negatives):
    the module a training step calls, which DistributedDataParallel wraps under DDP (its forward
    then sees every parameter a rank's share uses). The model's own state_dict is what is saved.

    minibatch: a sampled computation tree around the rows' distinct nodes; full_graph: every node
    embedded with freshly sampled neighbours, the rows' nodes read from it. `rng` draws the
    neighbours. `every_parameter` (a share of a batch, under DDP) adds 0 x every parameter, so each
    takes part even where the slice sampled no edge of its relation, as DDP needs: such a weight
    gets a zero gradient instead of none (in one process Adam skips it for that step; the same
    only if no rank's slice has an edge of that relation, which a balanced batch practically
    always has).
    """

    def __init__(
        self,
        model: HeteroGraphSAGE,
        x: dict[str, torch.Tensor],
        neighbor_sampler: NeighborSampler,
        s: HGNNConfig,
    ) -> None:
        super().__init__()
        self.model = model
        self.x = x
        self.neighbor_sampler = neighbor_sampler
        self.fanouts = list(s.fanouts)
        self.full_graph = s.training == "full_graph"
        self.negatives = s.negatives
        self.margin = s.margin
        self.node_types = sorted(x)
        self.code = {t: i for i, t in enumerate(self.node_types)}
        self.counts = np.array([x[t].shape[0] for t in self.node_types], dtype=np.int64)
        self.type_offset = np.concatenate([[0], np.cumsum(self.counts)[:-1]])  # type's node 0 in z_all

    def forward(
        self,
        at: np.ndarray,
        an: np.ndarray,
        pt: np.ndarray,
        po: np.ndarray,
        nt: np.ndarray,
        ng: np.ndarray,
        rng: np.random.Generator,
        every_parameter: bool = False,
    ) -> torch.Tensor:
        """at/an: anchors' types and indices, pt/po: positives', nt/ng: negatives' (k per row)."""
        model, x = self.model, self.x
        node_types, code, type_offset = self.node_types, self.code, self.type_offset
        dev = next(model.parameters()).device
        if self.full_graph:  # every node, fresh neighbours; then this step's edges are rows of it
            z = model.full_graph_forward(self.neighbor_sampler.graph, x, self.fanouts, rng)
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
            sub = self.neighbor_sampler.sample(seeds, rng)
            ids = {t: torch.from_numpy(v).to(dev) for t, v in sub.node_ids.items()}
            z = model({t: x[t][v] for t, v in ids.items()}, sub.layers, node_ids=ids)
            z_all = torch.cat([z[t] for t in node_types if t in seeds])
        idx = torch.from_numpy(position).to(dev)
        b = at.shape[0]
        za, zp, zn = z_all[idx[:b]], z_all[idx[b : 2 * b]], z_all[idx[2 * b :]].view(b, self.negatives, -1)
        pos_score = (za * zp).sum(-1, keepdim=True)
        neg_score = torch.einsum("bd,bkd->bk", za, zn)
        hinge = torch.relu(neg_score - pos_score + self.margin)
        if every_parameter:
            hinge = hinge + 0.0 * torch.stack([p.sum() for p in model.parameters()]).sum()
        return hinge


def _shares() -> tuple[list[int], int]:
    """Which contiguous slices of every global batch this process computes, out of how many:
    ([rank], world) under DDP; ([0], 1) in one process (the whole batch at once, as always).
    A test makes one process compute every slice of an N-rank run ([0 .. N-1], N)."""
    rank, world = rank_and_world()
    return [rank], world


def _share_seed(seed: int, epoch: int, batch: int, share: int) -> int:
    """The torch seed (dropout) of one share of one batch under DDP."""
    return int(np.random.SeedSequence([seed, _SHARE_STREAM, epoch, batch, share]).generate_state(1)[0])


def _fingerprint(
    s: HGNNConfig, train: dict[str, EdgeSet], x: dict[str, torch.Tensor]
) -> tuple[dict[str, Any], np.ndarray]:
    """What every DDP rank must agree on: the settings (device and threads aside), the node counts,
    a checksum of each type's features; and the supervision edges (check_same_data's arguments)."""
    import zlib

    settings = {k: v for k, v in s.model_dump(mode="json").items() if k not in _RESUME_FREE_SETTINGS}
    features = {t: zlib.crc32(v.detach().cpu().numpy().tobytes()) for t, v in sorted(x.items())}
    edges = [a for r in sorted(train) for a in (train[r].u, train[r].v)]
    fingerprint = {"settings": repr(sorted(settings.items())), "features": repr(features)}
    return fingerprint, np.concatenate(edges) if edges else np.empty(0, np.int64)


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
