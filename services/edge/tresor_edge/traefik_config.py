"""Traefik's static and file-provider dynamic configuration, rendered from settings.

What never varies is written here once; what varies (ports, certificate,
upstreams) comes from TraefikSettings. The rendered files are YAML.
"""

from pathlib import Path
from typing import Any

import yaml

from tresor_common.identity import IDENTITY_HEADER
from tresor_edge.certificates import ensure_self_signed
from tresor_edge.config import TraefikSettings

HTTPS = "websecure"
HTTP = "web"

# TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are always strong.
CIPHER_SUITES = [
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; "
    "object-src 'none'"
)

# Access log fields that carry the URL (and so the link token) are never written.
DROPPED_LOG_FIELDS = ("RequestPath", "RequestAddr", "RequestHost")


def static_config(settings: TraefikSettings, dynamic_file: Path) -> dict[str, Any]:
    entry_points: dict[str, Any] = {
        HTTPS: {
            "address": settings.https_address,
            # Trust no client-sent X-Forwarded-* / X-Real-Ip: the client address is the
            # one Traefik saw on the socket.
            "forwardedHeaders": {"insecure": False, "trustedIPs": []},
            "http": {
                "tls": {},
                "middlewares": ["security-headers@file"],
                # X_Tresor_Identity aliases X-Tresor-Identity for some backends: refuse such names.
                "aliasHeadersStrategy": "reject",
            },
        }
    }
    if settings.http == "redirect":
        entry_points[HTTP] = {
            "address": settings.http_address,
            "forwardedHeaders": {"insecure": False, "trustedIPs": []},
            "http": {
                "redirections": {"entryPoint": {"to": HTTPS, "scheme": "https", "permanent": True}},
                "aliasHeadersStrategy": "reject",
            },
        }
    access_log: dict[str, Any] = {
        "format": "json",
        "fields": {
            "defaultMode": "keep",
            "names": dict.fromkeys(DROPPED_LOG_FIELDS, "drop"),
            "headers": {"defaultMode": "drop"},
        },
    }
    if settings.access_log_file:
        access_log["filePath"] = str(settings.access_log_file)
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": entry_points,
        "providers": {"file": {"filename": str(dynamic_file), "watch": False}},
        "log": {"level": settings.log_level, "format": "json"},
        "accessLog": access_log,
        "api": {"dashboard": False, "insecure": False},
    }


def dynamic_config(settings: TraefikSettings, cert_file: Path, key_file: Path) -> dict[str, Any]:
    tls_router = {"entryPoints": [HTTPS], "tls": {}}
    return {
        "http": {
            "routers": {
                # Login and logout pages, the gate's stylesheet, and everything unknown
                # (a friendly 404 that carries the security headers).
                "gate": {
                    **tls_router,
                    "rule": "Path(`/`) || Path(`/login`) || PathPrefix(`/_gate/static/`)",
                    "service": "gate",
                    "middlewares": ["strip-identity"],
                    "priority": 300,
                },
                "logout": {
                    **tls_router,
                    "rule": "Method(`POST`) && PathRegexp(`^/s/[A-Za-z0-9_-]+/logout$`)",
                    "service": "gate",
                    "middlewares": ["strip-identity"],
                    "priority": 200,
                },
                "app": {
                    **tls_router,
                    "rule": "PathPrefix(`/s/`)",
                    "service": "upstream",
                    "middlewares": ["strip-identity", "gate-auth"],
                    "priority": 100,
                },
                "fallback": {
                    **tls_router,
                    "rule": "PathPrefix(`/`)",
                    "service": "gate",
                    "middlewares": ["strip-identity"],
                    "priority": 1,
                },
            },
            "middlewares": {
                # A client-sent identity never reaches anyone; the gate's replaces it.
                "strip-identity": {"headers": {"customRequestHeaders": {IDENTITY_HEADER: ""}}},
                "gate-auth": {
                    "forwardAuth": {
                        "address": f"{settings.gate_url}/_gate/authorize",
                        "trustForwardHeader": False,
                        "authRequestHeaders": ["Cookie", "Accept", "User-Agent"],
                        "authResponseHeaders": [IDENTITY_HEADER],
                        "maxResponseBodySize": 16384,
                    }
                },
                "security-headers": {
                    "headers": {
                        "stsSeconds": settings.hsts_seconds,
                        "stsIncludeSubdomains": True,
                        "contentTypeNosniff": True,
                        "frameDeny": True,
                        "referrerPolicy": "no-referrer",
                        "contentSecurityPolicy": CONTENT_SECURITY_POLICY,
                        "permissionsPolicy": "camera=(), microphone=(), geolocation=(), "
                        "payment=(), usb=()",
                        "customResponseHeaders": {
                            "Cache-Control": "no-store",
                            "Pragma": "no-cache",
                            "Cross-Origin-Opener-Policy": "same-origin",
                            "Cross-Origin-Resource-Policy": "same-origin",
                            "Server": "",
                            "X-Powered-By": "",
                        },
                    }
                },
            },
            "services": {
                "gate": {"loadBalancer": {"servers": [{"url": settings.gate_url}]}},
                "upstream": {"loadBalancer": {"servers": [{"url": settings.upstream_url}]}},
            },
        },
        "tls": {
            "options": {
                "default": {
                    "minVersion": "VersionTLS12",
                    "cipherSuites": CIPHER_SUITES,
                    "curvePreferences": ["X25519", "CurveP256", "CurveP384"],
                }
            },
            "stores": {
                "default": {
                    "defaultCertificate": {"certFile": str(cert_file), "keyFile": str(key_file)}
                }
            },
        },
    }


def write_config(settings: TraefikSettings) -> Path:
    """Render both files under the data folder; returns the static file to start Traefik with."""
    folder = settings.data_dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if settings.tls_cert_file and settings.tls_key_file:
        cert_file, key_file = settings.tls_cert_file.resolve(), settings.tls_key_file.resolve()
    else:
        cert_file, key_file = ensure_self_signed(folder / "tls", settings.tls_hostnames)
    dynamic_file = folder / "traefik-dynamic.yaml"
    static_file = folder / "traefik.yaml"
    dynamic_file.write_text(
        yaml.safe_dump(dynamic_config(settings, cert_file, key_file), sort_keys=False)
    )
    static_file.write_text(yaml.safe_dump(static_config(settings, dynamic_file), sort_keys=False))
    return static_file
