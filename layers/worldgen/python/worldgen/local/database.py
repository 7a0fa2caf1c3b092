"""The database the local commands use: DATABASE_URL when set, else the embedded server."""

from __future__ import annotations

from functools import cache

from worldgen.local.postgres import embedded_server, local_database_url, migrated_template, with_database
from worldgen.repository.migrator import migrate
from worldgen.settings import get_settings


@cache
def migrated_local_database() -> str:
    """URL of the local worldgen database, migrated (a no-op when up to date)."""
    url = local_database_url()
    migrate(url)
    return url


def catalog_database() -> str:
    """A migrated database to read the catalog from (the template clone source in tests)."""
    settings = get_settings()
    if settings.database_url:
        return migrated_local_database()
    admin = str(embedded_server().get_uri())
    return with_database(admin, migrated_template(admin))
