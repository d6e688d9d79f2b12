"""Tools for the model repositories: render pipelines from leaf configs, add and inspect models."""
