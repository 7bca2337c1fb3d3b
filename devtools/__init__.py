"""Development tools: the benchmark commands (`python manage.py bench_*`), their harness and the test support.

Dev-only: installed as a Django app when the package is present (the checkout that `make test` sets up); the
production image leaves the folder out (.dockerignore), so its `manage.py help` has no bench commands and no
code path reaches this package. Nothing in the application imports it (an import-layer test enforces that).
"""
