"""zoo plugin package zoo_latent."""
