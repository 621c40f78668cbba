"""What every Switchboard process needs: settings, Redis keys, errors, ids, the database.

The list of modules here is closed: settings, keys, errors, ids, redis, db, tables, access, migrations.
"""

__all__: list[str] = []
