"""Code that runs inside pipeline steps (embedded in compiled components)."""
