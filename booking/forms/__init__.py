"""See the package docstring of booking."""
