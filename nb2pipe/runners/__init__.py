"""Running compiled pipelines: locally on kfp.local, or on a Kubeflow cluster."""
