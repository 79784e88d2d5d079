"""Drift detection (alibi-detect), explanations (alibi) and retraining on drift.

alibi and alibi-detect are under the Business Source License: they are the optional extras
``nb2pipe[drift]`` and ``nb2pipe[explain]``, imported only inside the functions that use
them, behind small interfaces (:mod:`nb2pipe.monitoring.drift`,
:mod:`nb2pipe.monitoring.explain`) so another backend can be added.
"""
