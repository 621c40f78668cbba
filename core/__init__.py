"""What every Switchboard process needs: settings, Redis keys, errors, ids, the database, and the
authorization decisions that both the web process and the worker make.

The list of modules here is closed: settings, keys, errors, ids, redis, db, tables (a package, one module
per noun), cache (the per-process TTL cache, single-flight and bounded, behind every short-lived cache), access, migrations, flags (the flag store, its cache, and the pushed flags' context variable that
`is_feature_enabled` reads in the worker), entitlement (Duo enabled, seats, maturity: SPEC §6), metrics (the Prometheus series of web and worker and
the `/admin` page's per-minute counters: SPEC §10), logs (JSON log lines and the `expanded_ai_logging`
privacy rule: SPEC §10).
"""

__all__: list[str] = []
