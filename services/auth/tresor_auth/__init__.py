"""The auth service: tenants, users, passwords, sessions and the audit log (gRPC)."""
