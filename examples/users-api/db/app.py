# The users database: implements example:users/database on Spin's SQLite interface.
# It may open the `default` database only because its parent grants it and the manifest
# lets it inherit that grant (inherit_configuration = ["sqlite_databases"]).
from wit_world import exports
from wit_world.exports.database import User
from wit_world.imports import sqlite
from componentize_py_types import Err

SCHEMA = """CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
)"""


def connect() -> sqlite.Connection:
    try:
        connection = sqlite.Connection.open("default")
        connection.execute(SCHEMA, [])
        return connection
    except Err as e:
        raise Err(f"the database is unavailable: {e.value}")


class Database(exports.Database):
    def get_user(self, id: int) -> User:
        rows = connect().execute(
            "SELECT id, email, created_at FROM users WHERE id = ?", [sqlite.Value_Integer(id)]
        ).rows
        if not rows:
            raise Err(f"no user with id {id}")
        values = rows[0].values
        return User(id=values[0].value, email=values[1].value, created_at=values[2].value)

    def create_user(self, email: str) -> int:
        email = email.strip()
        if "@" not in email or " " in email:
            raise Err(f"`{email}` is not an email address")
        connection = connect()
        try:
            connection.execute("INSERT INTO users (email) VALUES (?)", [sqlite.Value_Text(email)])
        except Err as e:
            raise Err(f"`{email}` is taken" if "UNIQUE" in str(e.value) else f"cannot add the user: {e.value}")
        return connection.execute("SELECT last_insert_rowid()", []).rows[0].values[0].value
