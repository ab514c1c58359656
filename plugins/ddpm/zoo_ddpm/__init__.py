"""zoo plugin package zoo_ddpm."""
