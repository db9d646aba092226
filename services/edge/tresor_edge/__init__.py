"""The edge: Traefik terminates TLS and asks the gate about every request under /s/."""
