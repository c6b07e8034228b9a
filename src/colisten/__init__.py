"""colisten: recommend a new, sparse content type from behaviour on an established one (2T-HGNN)."""

__version__ = "0.1.0"
