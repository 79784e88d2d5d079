"""What lifecycle, monitoring and capacity keep and read back: the MLflow registry, the
training data kept with a model version, served models' payload logs, tables, and the values
pipeline steps hand on. It sits below those three packages and imports none of them."""
