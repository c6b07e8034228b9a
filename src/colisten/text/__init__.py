"""Text embeddings of every item (sentence-transformers, an offline packaged model), cached by text.

Entry points: `embed.embed_items`, `embed.load_text_model`, and the stage `stage.run` (`colisten
embed`: the run folder content/, the [content] settings).
"""
