"""Static analysis of notebook code with :mod:`ast`."""
