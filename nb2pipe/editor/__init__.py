"""What the JupyterLab panel asks of nb2pipe: a notebook's graph, compiling, background local
runs, submitting and deploying. The Jupyter Server routes (``jupyterlab_nb2pipe.routes``) only
parse requests and call these functions, so everything here is testable without a server."""
