"""The data layer: one async `databases.Database`, SQLAlchemy Core tables, Alembic migrations.

* `database`  creates the Database (SQLite file or PostgreSQL) and answers readiness;
* `tables`    the schema as SQLAlchemy Core tables (one MetaData);
* `migrate`   upgrades the schema with Alembic, synchronously, before the workers start.
"""
