"""Strata's logic, shared by every process: the record pipeline, the query language, the tier
policy, alert rules and their evaluation. Nothing here imports pyflink or FastAPI, so the jobs,
the API and the CLI run the same code, and it is unit-tested without a JVM or a server."""
