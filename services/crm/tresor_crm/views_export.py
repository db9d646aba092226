"""Admin pages: the tenant's export ("hardcopy"), asked for, watched and downloaded.

Only a tenant admin reaches them (`AdminDep`; anyone else gets the 403 page), and the
backup service checks again with auth that the actor is an active admin of the tenant.
The backup service writes the audit events ("export.requested", "export.downloaded");
the CRM keeps no state of its own: the proto has no list of a tenant's exports, so the
status page shows the one export whose id is in its address (the request redirects there).
While an export runs the status page asks the browser to reload it (a `Refresh` header,
no script). The download streams the backup service's chunks through to the browser.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from tresor_crm import i18n, web
from tresor_crm.audit_client import client_ip
from tresor_crm.backup_client import BackupClient, ExportView, backup_client
from tresor_crm.deps import AdminDep
from tresor_crm.errors import NotFound
from tresor_crm.identity import Actor

router = APIRouter(prefix="/s/{link}", include_in_schema=False)

BackupDep = Annotated[BackupClient, Depends(backup_client)]

REFRESH_SECONDS = 3
_SAFE_FILENAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
DOWNLOAD_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

i18n.add_texts(
    "de",
    {
        "export_title": "Datenexport",
        "export_text": (
            "Ein Export enthält alle Daten Ihres Mandanten in einer ZIP-Datei: Kontakte, Firmen, "
            "Verkaufschancen, Notizen und Aufgaben als CSV (öffnet in Excel) und JSON, alle "
            "Dokumente im Original, die Benutzer (ohne Passwörter), das Prüfprotokoll und eine "
            "Übersicht (index.html) zum Lesen ohne Internet. Er wird im Hintergrund erstellt "
            "und steht danach eine begrenzte Zeit nur für Administratoren zum Herunterladen "
            "bereit. Anforderung und Download werden protokolliert."
        ),
        "export_request": "Export anfordern",
        "export_unavailable": "Exporte sind in dieser Installation nicht verfügbar.",
        "export_no_list": (
            "Eine Liste früherer Exporte gibt es hier nicht: Nach dem Anfordern zeigt die "
            "Statusseite genau diesen Export. Merken Sie sich deren Adresse, um später "
            "zurückzukehren."
        ),
        "export_status": "Stand des Exports",
        "export_id": "Export-Nr.",
        "export_state": "Status",
        "export_state_queued": "In der Warteschlange",
        "export_state_running": "Wird erstellt",
        "export_state_done": "Fertig",
        "export_state_failed": "Fehlgeschlagen",
        "export_phase": "Schritt",
        "export_phase_queued": "wartet",
        "export_phase_records": "Datensätze",
        "export_phase_documents": "Dokumente",
        "export_phase_users": "Benutzer",
        "export_phase_audit_log": "Prüfprotokoll",
        "export_phase_index": "Übersicht",
        "export_phase_done": "abgeschlossen",
        "export_records": "Datensätze",
        "export_documents": "Dokumente",
        "export_users": "Benutzer",
        "export_audit_events": "Protokolleinträge",
        "export_requested_at": "Angefordert am",
        "export_finished_at": "Fertig seit",
        "export_expires_at": "Herunterladbar bis",
        "export_size": "Größe",
        "export_sha256": "SHA-256",
        "export_error": "Grund",
        "export_download": "ZIP herunterladen",
        "export_refreshing": "Diese Seite aktualisiert sich, bis der Export fertig ist.",
        "export_reload": "Jetzt aktualisieren",
        "export_started": "Der Export wurde angefordert.",
        "export_again": "Neuen Export anfordern",
        "export_back": "Zu den Exporten",
    },
)
i18n.add_texts(
    "en",
    {
        "export_title": "Data export",
        "export_text": (
            "An export holds all of your tenant's data in one ZIP file: contacts, companies, "
            "deals, notes and tasks as CSV (opens in Excel) and JSON, every document as its "
            "original file, the users (without passwords), the audit log and an overview "
            "(index.html) to read offline. It is made in the background and can then be "
            "downloaded by admins only, for a limited time. Requests and downloads are "
            "audited."
        ),
        "export_request": "Request an export",
        "export_unavailable": "Exports are not available in this installation.",
        "export_no_list": (
            "There is no list of earlier exports here: after a request, the status page shows "
            "that one export. Keep its address to come back later."
        ),
        "export_status": "Export status",
        "export_id": "Export no.",
        "export_state": "State",
        "export_state_queued": "Queued",
        "export_state_running": "Being made",
        "export_state_done": "Done",
        "export_state_failed": "Failed",
        "export_phase": "Step",
        "export_phase_queued": "waiting",
        "export_phase_records": "records",
        "export_phase_documents": "documents",
        "export_phase_users": "users",
        "export_phase_audit_log": "audit log",
        "export_phase_index": "overview",
        "export_phase_done": "finished",
        "export_records": "Records",
        "export_documents": "Documents",
        "export_users": "Users",
        "export_audit_events": "Audit log entries",
        "export_requested_at": "Requested at",
        "export_finished_at": "Finished at",
        "export_expires_at": "Downloadable until",
        "export_size": "Size",
        "export_sha256": "SHA-256",
        "export_error": "Reason",
        "export_download": "Download the ZIP",
        "export_refreshing": "This page refreshes until the export is done.",
        "export_reload": "Refresh now",
        "export_started": "The export was requested.",
        "export_again": "Request a new export",
        "export_back": "To the exports",
    },
)


def _size(value: int, lang: str = "de") -> str:
    text = f"{value / 1024:.1f} KB" if value < 1024 * 1024 else f"{value / (1024 * 1024):.1f} MB"
    return text.replace(".", ",") if lang == "de" else text


def _export_id(raw: str) -> uuid.UUID:
    """An id that is not even a UUID is as unknown as any other."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("no such export, or it has expired") from None


def _filename(raw: str, export_id: uuid.UUID) -> str:
    name = "".join(ch for ch in raw if ch in _SAFE_FILENAME).lstrip(".")
    if not name.endswith(".zip") or len(name) > 120:
        name = f"tresor-export-{export_id}.zip"
    return name


@router.get("/admin/exports", response_class=HTMLResponse)
async def exports(request: Request, actor: AdminDep, backup: BackupDep) -> Response:
    return await web.render(
        request, actor, "admin/exports.html", nav="admin", available=backup.configured
    )


@router.post("/admin/exports")
async def request_export(
    request: Request, actor: AdminDep, backup: BackupDep, form: web.CheckedFormDep
) -> Response:
    started = await backup.start_export(actor, client_ip(request))
    return web.redirect(actor, f"admin/exports/{started.id}?started=1")


async def _status_page(
    request: Request, actor: Actor, export: ExportView, started: bool
) -> HTMLResponse:
    response = await web.render(
        request,
        actor,
        "admin/export.html",
        nav="admin",
        export=export,
        started=started,
        size=_size,
    )
    if export.running:
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    return response


@router.get("/admin/exports/{export_id}", response_class=HTMLResponse)
async def export_status(
    request: Request, actor: AdminDep, backup: BackupDep, export_id: str, started: bool = False
) -> Response:
    export = await backup.export_status(actor, _export_id(export_id))
    return await _status_page(request, actor, export, started)


@router.get("/admin/exports/{export_id}/download")
async def download_export(
    request: Request, actor: AdminDep, backup: BackupDep, export_id: str
) -> Response:
    wanted = _export_id(export_id)
    opened = await backup.open_export(actor, wanted, client_ip(request))
    filename = _filename(opened.filename, wanted)
    headers = {
        **DOWNLOAD_HEADERS,
        "Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{filename}",
    }
    if opened.size_bytes > 0:
        headers["Content-Length"] = str(opened.size_bytes)
    return StreamingResponse(opened.chunks(), media_type="application/zip", headers=headers)
