"""Plain HTTP endpoints: health, Prometheus metrics, GitLab's Features API, model definitions."""

__all__: list[str] = []
