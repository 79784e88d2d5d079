"""The package version alone, so stages that stamp it import nothing else."""

__version__ = "0.1.0"
