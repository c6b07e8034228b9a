"""The HTTP API (`colisten serve`): real-time recommendations from a run, hot model swap.

Entry points: `app.create_app`, `state.load_bundle`.
"""
