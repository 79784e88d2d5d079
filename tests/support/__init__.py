"""Helpers shared by the tests, the JupyterLab extension's tests and bench/: notebooks built in
code, fake servers (KFP, KServe), registered models, processes on loopback."""
