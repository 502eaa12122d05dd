from alembic import context
from sqlalchemy import create_engine

import packyard.auth.models
import packyard.changelog.events
import packyard.publishing.models
import packyard.repository.models  # noqa: F401
from packyard.db import Base

engine = context.config.attributes.get("engine")
if engine is None:
    # `alembic revision --autogenerate` from a checkout: PACKYARD_DATABASE_URL or a scratch SQLite file.
    import os

    engine = create_engine(os.environ.get("PACKYARD_DATABASE_URL", "sqlite:///migrations-scratch.db"))

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    context.run_migrations()
