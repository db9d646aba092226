"""`make run`: the whole stack on one machine, with embedded PostgreSQL and Redis by default."""
