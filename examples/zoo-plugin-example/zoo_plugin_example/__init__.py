"""zoo-plugin-example: the plugin that the plugin tutorial (README.md beside this package) builds."""
