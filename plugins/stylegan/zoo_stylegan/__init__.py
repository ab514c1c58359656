"""zoo plugin package zoo_stylegan."""
