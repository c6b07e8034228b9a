"""The co-listening edge rule, its opt-in extras, the run-directory outputs, and bad input."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colisten.config import GraphConfig, Settings
from colisten.graph import stage as graph_stage
from colisten.graph.build import GraphInputError, build_co_listening_graph
from colisten.graph.stage import load_graph
from colisten.graph.store import CoListeningGraph
from colisten.rundir import RunDir

ITEMS = [
    ("a1", "audiobook"),
    ("a2", "audiobook"),
    ("a3", "audiobook"),
    ("a4", "audiobook"),  # never interacted with: an isolated node
    ("p1", "podcast"),
    ("p2", "podcast"),
    ("p3", "podcast"),
]
HISTORY = [
    ("u1", "a1", 10),
    ("u1", "p1", 11),
    ("u1", "p2", 12),
    ("u2", "a1", 20),
    ("u2", "a2", 21),
    ("u2", "p1", 22),
    ("u3", "p3", 30),  # a single item links nothing
    ("u4", "a3", 40),
    ("u4", "a2", 41),
]


def edge_dict(build) -> dict[tuple[str, str], float]:
    t = build.edges().to_pylist()
    return {(r["src"], r["dst"]): r["weight"] for r in t}


PAPER_RULE = {"association": "cocount", "top_k": None}  # every co-listened pair, weight = co-count


def build(tmp_path, history, items=ITEMS, **cfg):
    """Build from in-memory tables with GraphConfig(**cfg), starting from the paper's rule."""
    item_table, history_table = _tables(items, history)
    settings = GraphConfig(**{**PAPER_RULE, **cfg})
    return build_co_listening_graph(history_table, item_table, settings, tmp_path / "work")


def test_defaults_are_cosine_top_20_and_the_papers_rule_is_one_setting_file_away():
    from colisten.config import load_settings

    g = GraphConfig()
    assert (g.association, g.top_k) == ("cosine", 20)
    paper = load_settings("examples/paper-graph.toml")
    assert (paper.graph.association, paper.graph.top_k, paper.hgnn.edge_weighting) == (
        "cocount",
        None,
        "none",
    )
    assert GraphConfig(top_k=0).top_k is None  # TOML has no null: 0 keeps every edge


def _tables(items, history):
    import pyarrow as pa

    rows = sorted(items, key=lambda r: (r[1], r[0]))
    it = pa.table({"item_id": [r[0] for r in rows], "item_type": [r[1] for r in rows]})
    hist = pa.table(
        {
            "user_id": [e[0] for e in history],
            "item_id": [e[1] for e in history],
            "event": [e[3] if len(e) > 3 else "stream" for e in history],
            "timestamp": pa.array([int(e[2]) for e in history], pa.int64()),
        }
    )
    return it, hist


def test_edge_rule_on_hand_example(tmp_path):
    """Every pair of items sharing a user is an edge (weight = shared users); no other pair is."""
    b = build(tmp_path, HISTORY)
    expected = {
        ("a1", "p1"): 2.0,  # u1 and u2
        ("a1", "p2"): 1.0,
        ("p1", "p2"): 1.0,
        ("a1", "a2"): 1.0,
        ("a2", "p1"): 1.0,
        ("a2", "a3"): 1.0,  # u4; stored in global order, a2 before a3
    }
    assert edge_dict(b) == expected
    for x, y in itertools.combinations([i for i, _ in ITEMS], 2):
        shared = {e[0] for e in HISTORY if e[1] == x} & {e[0] for e in HISTORY if e[1] == y}
        assert ((x, y) in expected) == bool(shared)


def test_relations_are_typed_by_sorted_type_pair(tmp_path):
    b = build(tmp_path, HISTORY)
    edges = b.edges().to_pylist()
    kind = dict(ITEMS)
    for r in edges:
        assert r["relation"] == "__".join(sorted((kind[r["src"]], kind[r["dst"]])))
    assert b.stats["edges_per_relation"] == {
        "audiobook__audiobook": 2,
        "audiobook__podcast": 3,
        "podcast__podcast": 1,
    }
    g = b.graph
    assert sorted(g.csr) == [
        ("audiobook", "audiobook"),
        ("audiobook", "podcast"),
        ("podcast", "audiobook"),
        ("podcast", "podcast"),
    ]
    # cross-type relation: the two directions are transposes of each other
    ap, pa_ = g.csr[("audiobook", "podcast")], g.csr[("podcast", "audiobook")]
    fwd = {(s, int(d)) for s in range(4) for d in ap.neighbors(s)}
    back = {(int(d), s) for s in range(3) for d in pa_.neighbors(s)}
    assert fwd == back == {(0, 0), (0, 1), (1, 0)}
    # same-type relation is symmetric: a2 (type index 1) sees a1 and a3
    assert g.csr[("audiobook", "audiobook")].neighbors(1).tolist() == [0, 2]


def test_csr_matches_the_store_builder_and_round_trips(tmp_path):
    """The streamed CSR equals CoListeningGraph.from_undirected_edges on the same edge list."""
    b = build(tmp_path, HISTORY)
    nodes = {r["item_id"]: r for r in b.nodes.to_pylist()}
    per_rel: dict[str, tuple[list, list, list]] = {}
    for r in b.edges().to_pylist():
        u, v, w = per_rel.setdefault(r["relation"], ([], [], []))
        u.append(nodes[r["src"]]["type_index"])
        v.append(nodes[r["dst"]]["type_index"])
        w.append(r["weight"])
    reference = CoListeningGraph.from_undirected_edges(
        b.graph.num_nodes, {k: (np.array(u), np.array(v), np.array(w)) for k, (u, v, w) in per_rel.items()}
    )
    assert set(reference.csr) == set(b.graph.csr)
    for key, c in reference.csr.items():
        got = b.graph.csr[key]
        assert np.array_equal(got.indptr, c.indptr) and got.indptr.dtype == np.int64
        assert np.array_equal(got.indices, c.indices) and got.indices.dtype == np.int64
        assert np.array_equal(got.weight, c.weight) and got.weight.dtype == np.float32
    b.graph.save(tmp_path / "csr")
    loaded = CoListeningGraph.load(tmp_path / "csr")
    assert loaded.num_nodes == b.graph.num_nodes
    assert all(np.array_equal(loaded.csr[k].indices, c.indices) for k, c in b.graph.csr.items())


def test_items_without_interactions_stay_as_isolated_nodes(tmp_path):
    b = build(tmp_path, HISTORY)
    assert b.graph.num_nodes == {"audiobook": 4, "podcast": 3}
    assert b.nodes.column("item_id").to_pylist() == ["a1", "a2", "a3", "a4", "p1", "p2", "p3"]
    assert b.nodes.column("type_index").to_pylist() == [0, 1, 2, 3, 0, 1, 2]
    assert b.stats["isolated_nodes_per_type"] == {"audiobook": 1, "podcast": 1}  # a4 and p3
    for (src, _dst), c in b.graph.csr.items():
        assert c.indptr.shape == (b.graph.num_nodes[src] + 1,)
    assert b.graph.csr[("audiobook", "audiobook")].degrees()[3] == 0


def test_duplicate_events_count_once_per_user_item_pair(tmp_path):
    history = [("u1", "a1", 1), ("u1", "a1", 2), ("u1", "a1", 3, "follow"), ("u1", "p1", 4), ("u1", "p1", 5)]
    b = build(tmp_path, history)
    assert edge_dict(b) == {("a1", "p1"): 1.0}
    assert b.stats["user_item_pairs"] == 2


def test_cap_keeps_each_users_most_recent_items(tmp_path):
    history = [("u1", "a1", 1), ("u1", "a2", 2), ("u1", "a3", 3), ("u1", "p1", 4), ("u1", "p2", 5)]
    history += [("u1", "a1", 9)]  # a1's latest interaction is the most recent of all
    b = build(tmp_path, history, max_items_per_user=3)
    assert set(edge_dict(b)) == {("a1", "p1"), ("a1", "p2"), ("p1", "p2")}
    assert b.stats["user_item_pairs_after_cap"] == 3
    assert any("per-user cap" in w for w in b.stats["warnings"])


def test_single_user_with_thousands_of_items_is_capped_and_succeeds(tmp_path):
    items = [(f"p{i:05d}", "podcast") for i in range(3000)] + [("a0", "audiobook")]
    history = [("heavy", f"p{i:05d}", i) for i in range(3000)] + [("u2", "a0", 5), ("u2", "p00001", 6)]
    b = build(tmp_path, history, items=items)  # default cap: 500
    cap = GraphConfig().max_items_per_user
    assert b.stats["edges_per_relation"]["podcast__podcast"] == cap * (cap - 1) // 2
    kept = {r["src"] for r in b.edges().to_pylist()} | {r["dst"] for r in b.edges().to_pylist()}
    assert "p02999" in kept and "p02499" not in kept  # the 500 most recent survive
    assert b.stats["edges_per_relation"]["audiobook__podcast"] == 1


def test_min_cocount_drops_pairs_with_too_few_shared_users(tmp_path):
    b = build(tmp_path, HISTORY, min_cocount=2)
    assert edge_dict(b) == {("a1", "p1"): 2.0}


def test_window_days_pairs_only_close_interactions(tmp_path):
    day = 86_400
    history = [("u1", "a1", 0), ("u1", "p1", 2 * day), ("u1", "p2", 10 * day)]
    b = build(tmp_path, history, window_days=3)
    assert set(edge_dict(b)) == {("a1", "p1")}


def test_top_k_keeps_an_edge_in_either_endpoints_top_k(tmp_path):
    # p1 is co-listened with a1 by 3 users, with a2 by 2, with a3 by 1.
    history = [(f"u{i}", "p1", i) for i in range(6)]
    history += [("u0", "a1", 0), ("u1", "a1", 0), ("u2", "a1", 0), ("u3", "a2", 0), ("u4", "a2", 0)]
    history += [("u5", "a3", 0)]
    b = build(tmp_path, history, top_k=1)
    # p1's top-1 audiobook is a1; a2 and a3 each keep p1 as their own only podcast neighbour
    assert set(edge_dict(b)) == {("a1", "p1"), ("a2", "p1"), ("a3", "p1")}
    history += [("u5", "a2", 0)]  # a2 and a3 now share u5: each is the other's only audiobook neighbour
    b = build(tmp_path, history, top_k=1)
    assert ("a2", "a3") in edge_dict(b)


def test_edge_events_setting_filters_which_events_create_edges(tmp_path):
    history = [("u1", "a1", 1), ("u1", "p1", 2, "follow"), ("u1", "p2", 3)]
    assert set(edge_dict(build(tmp_path, history))) == {("a1", "p1"), ("a1", "p2"), ("p1", "p2")}
    assert set(edge_dict(build(tmp_path, history, edge_events=["stream"]))) == {("a1", "p2")}


def test_unweighted_graph_when_weights_are_off(tmp_path):
    b = build(tmp_path, HISTORY, keep_weights=False)
    assert set(edge_dict(b).values()) == {1.0}
    assert all(np.all(c.weight == 1.0) for c in b.graph.csr.values())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["u1", "u2", "u3", "u4", "u5"]),
            st.sampled_from(["a1", "a2", "a3", "p1", "p2", "p3", "p4", "x9"]),  # x9: not in the catalogue
            st.integers(0, 30 * 86_400),
            st.sampled_from(["stream", "follow", "preview"]),
        ),
        min_size=1,
        max_size=40,
    ),
    cap=st.sampled_from([None, 2, 3]),
    window=st.sampled_from([None, 5]),
    min_count=st.sampled_from([1, 2]),
    top_k=st.sampled_from([None, 1, 2]),
    edge_events=st.sampled_from([None, ["stream"]]),
    association=st.sampled_from(["cocount", "cosine", "jaccard", "ppmi"]),
    shrinkage=st.sampled_from([0.0, 3.0]),
)
def test_build_matches_the_rule_written_out(
    tmp_path_factory,
    graph_helpers,
    events,
    cap,
    window,
    min_count,
    top_k,
    edge_events,
    association,
    shrinkage,
):
    cfg = GraphConfig(
        max_items_per_user=cap,
        window_days=window,
        min_cocount=min_count,
        top_k=top_k,
        edge_events=edge_events,
        association=association,
        shrinkage=shrinkage,
    )
    items = [("a1", "audiobook"), ("a2", "audiobook"), ("a3", "audiobook")]
    items += [(f"p{i}", "podcast") for i in range(1, 5)]
    expected = graph_helpers.reference_edges(items, events, cfg, cut=25 * 86_400)
    try:
        b = build_co_listening_graph(
            graph_helpers.history_table(events),
            graph_helpers.items_table(items),
            cfg,
            tmp_path_factory.mktemp("w"),
            cut=25 * 86_400,
        )
    except GraphInputError:
        return  # every event filtered away: covered by the bad-input tests
    assert edge_dict(b) == {k: float(np.float32(v)) for k, v in expected.items()}


def test_top_k_by_association_prefers_specific_pairs_to_a_popular_hub(tmp_path):
    items = [("a1", "audiobook"), ("p1", "podcast"), ("p2", "podcast"), ("p3", "podcast"), ("p4", "podcast")]
    groups = [(30, ("p1", "p3")), (10, ("p1", "p2")), (40, ("p3", "p4")), (5, ("a1", "p3")), (200, ("p3",))]
    history = [(f"g{g}u{u}", i, 0) for g, (n, its) in enumerate(groups) for u in range(n) for i in its]
    rng = np.random.default_rng(0)
    history = [history[i] for i in rng.permutation(len(history))]
    # users per item: p1 40, p2 10, p3 275 (a hub: 200 users listen to it alone), p4 40, a1 5
    by_count = edge_dict(build(tmp_path / "c", history, items, top_k=1))
    assert set(by_count) == {("p1", "p3"), ("p1", "p2"), ("p3", "p4"), ("a1", "p3")}
    runs = [build(tmp_path / f"k{i}", history, items, association="cosine", top_k=1) for i in range(2)]
    by_cosine = edge_dict(runs[0])
    assert by_cosine == edge_dict(runs[1])  # deterministic
    # p1's best podcast is now p2, which it shares with all of p2's users, not the hub p3
    assert set(by_cosine) == {("p1", "p2"), ("p3", "p4"), ("a1", "p3")}
    expected = {
        ("p1", "p2"): 10 / np.sqrt(40 * 10),
        ("p3", "p4"): 40 / np.sqrt(275 * 40),
        ("a1", "p3"): 5 / np.sqrt(5 * 275),
    }
    assert by_cosine == {k: pytest.approx(float(np.float32(v))) for k, v in expected.items()}
    jaccard = edge_dict(build(tmp_path / "j", history, items, association="jaccard"))
    assert jaccard[("p1", "p3")] == pytest.approx(30 / (40 + 275 - 30))
    # PPMI keeps only pairs seen together more often than chance (285 users in all)
    ppmi = edge_dict(build(tmp_path / "m", history, items, association="ppmi"))
    # p1-p3: 30 x 285 < 40 x 275, below chance, dropped; a1-p3: 5 x 285 > 5 x 275, kept
    assert set(ppmi) == {("p1", "p2"), ("p3", "p4"), ("a1", "p3")}
    assert ppmi[("p1", "p2")] == pytest.approx(np.log(10 * 285 / (40 * 10)), rel=1e-6)


# --- the stage on a run directory -------------------------------------------------------------------
def test_stage_writes_the_contract_files(tmp_path, graph_helpers):
    run = graph_helpers.write_run(tmp_path / "run", ITEMS, HISTORY)
    graph_stage.run(RunDir(run), Settings(), describe=False)
    g = run / "graph"
    nodes = pq.read_table(g / "nodes.parquet")
    assert nodes.column_names == ["item_id", "item_type", "global_index", "type_index"]
    assert nodes.column("global_index").to_pylist() == list(range(len(ITEMS)))
    edges = pq.read_table(g / "edges.parquet")
    assert edges.column_names == ["src", "dst", "relation", "weight"]
    assert [str(t) for t in edges.schema.types] == ["string", "string", "string", "float"]
    assert edges.num_rows == 6
    assert sorted(p.name for p in (g / "csr").iterdir()) == [
        "audiobook__audiobook.npz",
        "audiobook__podcast.npz",
        "num_nodes.json",
        "podcast__audiobook.npz",
        "podcast__podcast.npz",
    ]
    summary = json.loads((g / "graph.json").read_text())
    assert summary["nodes_per_type"] == {"audiobook": 4, "podcast": 3}
    assert summary["edges_per_relation"]["audiobook__podcast"] == 3
    assert summary["settings"]["min_cocount"] == 1
    assert not (g / ".work").exists()
    graph = load_graph(run)
    assert graph.num_undirected_edges("audiobook__podcast") == 3
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["graph"]["edges"] == 6


def test_hold_out_events_never_create_edges(tmp_path, graph_helpers):
    day = graph_helpers.DAY
    cut = 100 * day
    history = [("u1", "a1", 1 * day), ("u1", "p1", 2 * day)]
    history += [("u2", "a2", 3 * day), ("u2", "p2", cut + day)]  # leaked hold-out event: ignored
    holdout = [("u1", "a3", cut + 1), ("u1", "p3", cut + 2), ("u3", "a2", cut + 3), ("u3", "p1", cut + 4)]
    run = graph_helpers.write_run(tmp_path / "run", ITEMS, history, holdout=holdout, cut=cut)
    summary = graph_stage.run(RunDir(run), Settings(), describe=False)
    edges = pq.read_table(run / "graph" / "edges.parquet").to_pylist()
    assert {(r["src"], r["dst"]) for r in edges} == {("a1", "p1")}
    assert summary["events_at_or_after_cut"] == 1


def test_rebuild_removes_relations_that_no_longer_exist(tmp_path, graph_helpers):
    run = graph_helpers.write_run(tmp_path / "run", ITEMS, HISTORY)
    graph_stage.run(RunDir(run), Settings(), describe=False)
    only_podcasts = [i for i in ITEMS if i[1] == "podcast"]
    graph_helpers.write_run(run, only_podcasts, [("u1", "p1", 1), ("u1", "p2", 2)])
    graph_stage.run(RunDir(run), Settings(), describe=False)
    assert sorted(p.name for p in (run / "graph" / "csr").glob("*.npz")) == ["podcast__podcast.npz"]
    assert load_graph(run).relations() == ["podcast__podcast"]


# --- bad input --------------------------------------------------------------------------------------
def test_empty_history_window_is_a_clear_error(tmp_path, graph_helpers):
    run = graph_helpers.write_run(tmp_path / "run", ITEMS, [])
    with pytest.raises(GraphInputError, match="history window is empty"):
        graph_stage.run(RunDir(run), Settings(), describe=False)
    assert not (run / "graph" / "graph.json").exists()


def test_no_edge_events_in_history_is_a_clear_error(tmp_path):
    with pytest.raises(GraphInputError, match=r"edge_events \['intent_to_pay'\].*present: \['stream'\]"):
        build(tmp_path, HISTORY, edge_events=["intent_to_pay"])


def test_only_one_item_type_builds_with_a_warning(tmp_path):
    items = [("p1", "podcast"), ("p2", "podcast"), ("p3", "podcast")]
    b = build(tmp_path, [("u1", "p1", 1), ("u1", "p2", 2)], items=items)
    assert b.graph.relations() == ["podcast__podcast"]
    assert edge_dict(b) == {("p1", "p2"): 1.0}
    assert any("only one item type" in w for w in b.stats["warnings"])


def test_history_touching_one_type_leaves_the_other_isolated_with_a_warning(tmp_path):
    b = build(tmp_path, [("u1", "p1", 1), ("u1", "p2", 2)])
    assert b.stats["isolated_nodes_per_type"]["audiobook"] == 4
    assert b.graph.csr[("audiobook", "podcast")].num_edges == 0
    assert any("1 of 2 item types" in w for w in b.stats["warnings"])
    assert any("audiobook__audiobook has no edges" in w for w in b.stats["warnings"])


def test_unsorted_catalogue_is_refused_naming_the_row(tmp_path):
    import pyarrow as pa

    items = pa.table({"item_id": ["b", "a"], "item_type": ["podcast", "podcast"]})
    hist = _tables(ITEMS, HISTORY)[1]
    with pytest.raises(GraphInputError, match=r"row 1 .*sorted by \(item_type, item_id\)"):
        build_co_listening_graph(hist, items, GraphConfig(), tmp_path)


def test_missing_history_column_is_named(tmp_path):
    hist = _tables(ITEMS, HISTORY)[1].drop_columns(["timestamp"])
    with pytest.raises(GraphInputError, match="timestamp"):
        build_co_listening_graph(hist, _tables(ITEMS, HISTORY)[0], GraphConfig(), tmp_path)


def test_string_timestamps_are_refused_with_the_fix(tmp_path):
    item_table, history_table = _tables(ITEMS, HISTORY)
    history_table = history_table.set_column(3, "timestamp", history_table.column("timestamp").cast("string"))
    with pytest.raises(GraphInputError, match=r"'timestamp' is VARCHAR.*colisten split"):
        build_co_listening_graph(history_table, item_table, GraphConfig(), tmp_path)


def test_running_out_of_memory_names_the_setting(tmp_path):
    import pyarrow as pa

    rng = np.random.default_rng(0)
    items = [(f"p{i:04d}", "podcast") for i in range(1500)]
    ids = np.array([i for i, _ in items])
    n = 60_000
    history = pa.table(
        {
            "user_id": [f"u{x}" for x in rng.integers(0, 1500, n)],
            "item_id": ids[rng.integers(0, 1500, n)],
            "event": ["stream"] * n,
            "timestamp": rng.integers(0, 10**7, n),
        }
    )
    with pytest.raises(GraphInputError, match=r"ran out of memory.*memory_limit = '8MB'"):
        build_co_listening_graph(
            history, _tables(items, [])[0], GraphConfig(memory_limit="8MB", threads=1), tmp_path
        )


# --- CLI ----------------------------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "colisten", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_builds_then_describes_the_graph(tmp_path, graph_helpers):
    run = graph_helpers.write_run(tmp_path / "run", ITEMS, HISTORY)
    built = _cli("graph", "--run", str(run))
    assert built.returncode == 0, built.stderr
    assert "audiobook__podcast" in built.stdout
    described = _cli("graph", "stats", "--run", str(run))
    assert described.returncode == 0, described.stderr
    assert "imbalance" in described.stdout
    assert (run / "graph" / "degrees.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run / "graph" / "stats.json").read_text())["imbalance_ratio"] == 3 / 1
    graph_stage.run(RunDir(run), Settings(), describe=False)  # a rebuild drops the previous stats
    assert not (run / "graph" / "stats.json").exists() and not (run / "graph" / "degrees.png").exists()


def test_cli_bad_input_exits_2_with_a_message_not_a_traceback(tmp_path, graph_helpers):
    run = graph_helpers.write_run(tmp_path / "run", ITEMS, [])
    r = _cli("graph", "--run", str(run))
    assert r.returncode == 2
    assert "history window is empty" in r.stderr and "Traceback" not in r.stderr
    missing = _cli("graph", "stats", "--run", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "colisten graph --run" in missing.stderr
