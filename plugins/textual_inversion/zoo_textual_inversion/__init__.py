"""zoo plugin: textual inversion (learn new token embeddings of a frozen latent text-to-image model)."""
