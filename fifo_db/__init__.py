"""fifo-db: exact FIFO lot matching and realized P&L inside PostgreSQL.

The engine is SQL (see sql/); this package installs it, runs it, schedules
it, verifies it, and starts an embedded PostgreSQL when there is no server.
"""

from fifo_db.errors import FifoError

__version__ = "0.1.0"
__all__ = ["FifoError", "__version__"]
