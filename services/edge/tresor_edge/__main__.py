"""`python -m tresor_edge gate | traefik | render`: run the gate, run Traefik, or only
write Traefik's configuration (for inspection)."""

import argparse
import os
import signal
import sys

from tresor_common.logs import configure_logging
from tresor_common.settings import SettingsError, exit_on_settings_error, load_settings
from tresor_edge.config import GateSettings, TraefikSettings
from tresor_edge.server import gate_server, traefik_binary
from tresor_edge.traefik_config import write_config


def main() -> None:
    parser = argparse.ArgumentParser(prog="tresor-edge", description="Tresor edge")
    parser.add_argument("command", choices=["gate", "traefik", "render"])
    args = parser.parse_args()
    try:
        if args.command == "gate":
            gate_settings = load_settings(GateSettings)
            configure_logging("gate", gate_settings.log_level)
            gate_server(gate_settings).run()
            return
        traefik_settings = load_settings(TraefikSettings)
    except SettingsError as exc:
        exit_on_settings_error(exc)
        return
    static_file = write_config(traefik_settings)
    if args.command == "render":
        print(static_file)
        return
    binary = traefik_binary(traefik_settings)
    # Traefik replaces this process: signals reach it directly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    os.execv(binary, [binary, f"--configFile={static_file}"])  # noqa: S606


if __name__ == "__main__":
    main()
