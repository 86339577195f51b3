"""Building what is deployed: the Lambda code zips and dependency layers, MWAA's ``plugins.zip``
and ``requirements.txt``, and the manifest Terraform reads (``build/artifacts.json``).

Development tooling: it runs on the build machine (``make package``) and never ships. Every
artifact is built from the committed lock for the Lambda runtime's Python and architecture, and
the same inputs give the same bytes, so an unchanged build deploys nothing (docs/packaging.md).
"""
