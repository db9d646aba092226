"""What every Tresor service shares: settings loading, logging, gRPC helpers, migrations."""
