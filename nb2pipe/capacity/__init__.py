"""Capacity planning for model serving: a trace-driven simulator of replica pools and queueing theory."""
