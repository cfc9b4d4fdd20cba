"""Storage: SQLAlchemy models, sessions, Alembic migrations and repository functions."""
