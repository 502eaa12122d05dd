"""CRAN-like R repositories: local-r sources, R source package uploads, `src/contrib/` serving."""
