"""Storage: async SQLAlchemy engine, sessions and Alembic migrations."""
