"""Pages for people: the `/admin` status page."""

__all__: list[str] = []
