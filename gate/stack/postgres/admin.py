"""What EmbeddedPostgres and ContainerPostgres share as a PostgreSQL server's superuser.

Both hand out the same URLs (``postgres`` over TCP on 127.0.0.1 with a per-server password) and create
and drop databases the same way: that code lives here once, in :class:`SuperuserAdmin`. Only how the
admin connection reaches the server may differ (EmbeddedPostgres uses its unix socket).
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

SUPERUSER = "postgres"
# Database names we create or drop: plain lower-case identifiers, so no quoting surprises anywhere.
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HOST = "127.0.0.1"


def new_password() -> str:
    """A per-server superuser password, URL-safe: it goes into DATABASE_URLs unquoted."""
    return secrets.token_urlsafe(24)


def check_identifier(name: str) -> str:
    """``name`` if it is a plain lower-case identifier (:data:`IDENTIFIER_RE`), else ValueError."""
    if not IDENTIFIER_RE.match(name):
        raise ValueError(f"database name {name!r} must match {IDENTIFIER_RE.pattern}")
    return name


class SuperuserAdmin:
    """URLs, databases and the admin connection of a server on 127.0.0.1, as :data:`SUPERUSER`.

    The class mixing this in sets ``_password`` (see :func:`new_password`) and provides ``port``.
    """

    _password: str

    if TYPE_CHECKING:

        @property
        def port(self) -> int: ...

    @property
    def password(self) -> str:
        return self._password

    def url(self, dbname: str = "postgres") -> str:
        """``postgresql://postgres:<password>@127.0.0.1:<port>/<dbname>`` (TCP, password auth)."""
        return f"postgresql://{SUPERUSER}:{self._password}@{_HOST}:{self.port}/{check_identifier(dbname)}"

    def create_database(self, name: str, *, template: str | None = None) -> None:
        """CREATE DATABASE ``name`` (a copy of ``template`` when given: much faster than migrating)."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(check_identifier(name)))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(check_identifier(template)))
        with self._admin() as conn:
            conn.execute(query)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS, ending its sessions first (pools left open must not block teardown)."""
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(check_identifier(name))
        )
        with self._admin() as conn:
            conn.execute(query)

    def _admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        """Superuser connection over TCP with the password (autocommit: CREATE/DROP DATABASE need it)."""
        return psycopg.connect(self.url(), connect_timeout=5, autocommit=True)

    def _select1_tcp(self) -> bool:
        """The readiness signal clients depend on: ``SELECT 1`` over TCP with the password."""
        with psycopg.connect(self.url(), connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
