"""The accounts' tables, beside Dagster's in the instance's database (prefixed `algo_platform_`),
and the triggers that make the audit table append-only in SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
users = sa.Table(
    "algo_platform_users",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=True),  # None: signs in through the proxy only
    sa.Column("platform_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # Sessions signed before this time are refused: disabling or a new password ends them at once.
    sa.Column("sessions_valid_after", sa.Float, nullable=False, default=0.0),
)
grants = sa.Table(
    "algo_platform_grants",
    metadata,
    sa.Column("user_name", sa.String(128), sa.ForeignKey("algo_platform_users.name"), primary_key=True),
    sa.Column("project", sa.String(128), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
)
audit = sa.Table(
    "algo_platform_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("user_name", sa.String(128), nullable=True, index=True),
    sa.Column("role", sa.String(32), nullable=True),
    sa.Column("project", sa.String(128), nullable=True, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.Text, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("client", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

# Each sign-in attempt is counted here before its password is checked, so concurrent attempts
# cannot all pass the lock check first; a successful sign-in clears its name's attempts.
attempts = sa.Table(
    "algo_platform_sign_in_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("user_name", sa.String(128), nullable=False, index=True),
    sa.Column("client", sa.String(64), nullable=True, index=True),
)
# Signed-in sessions: the cookie names one by a random id; signing out deletes it, so a copied
# cookie stops working at once.
sessions = sa.Table(
    "algo_platform_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # SHA-256 of the id: the table holds no live id
    sa.Column("user_name", sa.String(128), nullable=False, index=True),
    sa.Column("started_at", sa.Float, nullable=False),
)

APPEND_ONLY = {
    "sqlite": [
        f"CREATE TRIGGER IF NOT EXISTS algo_platform_audit_no_{verb.lower()} BEFORE {verb} ON algo_platform_audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        for verb in ("UPDATE", "DELETE")
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION algo_platform_audit_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql",
        # CREATE OR REPLACE (PostgreSQL 14+): replicas starting together do not race on a drop.
        "CREATE OR REPLACE TRIGGER algo_platform_audit_append_only BEFORE UPDATE OR DELETE ON algo_platform_audit "
        "FOR EACH ROW EXECUTE FUNCTION algo_platform_audit_append_only()",
    ],
}


def create(engine: sa.Engine) -> None:
    """Create what is missing; the triggers are created or replaced (idempotent)."""
    metadata.create_all(engine)
    with engine.begin() as connection:
        for statement in APPEND_ONLY.get(engine.dialect.name, []):
            connection.exec_driver_sql(statement)
