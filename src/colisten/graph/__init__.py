"""Co-listening graph (PAPER.md §1): build (DuckDB or Spark), CSR store, statistics."""
