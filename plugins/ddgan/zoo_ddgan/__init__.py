"""zoo plugin package zoo_ddgan."""
