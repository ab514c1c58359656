"""zoo plugin package zoo_ddim."""
