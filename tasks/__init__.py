"""Prefect tasks: each calls one mars_core function and returns its report dataclass (or a
path); the download task retries with back-off. `flow_process` is a flow command's Prefect
set-up, called explicitly by each flow's `main`; `prefect_server` holds the one patch of
Prefect's private parts (its temporary API server), written for one Prefect version.
"""
