"""SQLAlchemy models and the session factory. Alembic (migrations/) owns the schema."""
