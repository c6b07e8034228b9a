"""HGNN stage (PAPER.md §3-4): balanced multi-link edge sampler, neighbour sampler, heterogeneous
GraphSAGE, training.

Entry points: `train.fit_hgnn(graph, features, settings, out_dir)` (`.embeddings` holds each node
type's vectors) and the stage `stage.run`; `edge_sampler.BalancedEdgeSampler`,
`neighbor_sampler.NeighborSampler`, `model.HeteroGraphSAGE`.
"""
