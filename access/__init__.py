"""Who may do what: tokens (`tokens`), GitLab's read rules (`reading`), entitlement (`entitlement`), the
flag store (`flags`), the per-user rate limit (`ratelimit`), the `aiAction` checks 3-6 composed once
(`checks`) for the web process and the worker's re-check (`recheck`), and the writes an administrator makes
(`admin/`: accounts, namespaces, add-ons and seats, model settings, the seed)."""

__all__: list[str] = []
