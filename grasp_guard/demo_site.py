"""The demo's photo site: a local HTTPS page that takes a photo upload and shows what arrived.

It stands in for a social site. ``GET /`` is a page with an ``<input type=file>`` whose
script posts the picked photo with ``fetch`` and ``FormData``, as sites' own scripts do;
``POST /upload`` keeps the last photo it received in memory; ``GET /received`` serves that
photo back and ``GET /received.json`` describes it. Its certificate comes from a throwaway
CA made by :func:`make_certs`; the proxy in front of it is told to trust that CA upstream.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

logger = logging.getLogger(__name__)

UPLOAD_PATH = "/upload"
UPLOAD_FIELD = "photo"
RECEIVED_PATH = "/received"
MAX_UPLOAD = 25 * 2**20
CERT_DAYS = 7


@dataclass(frozen=True)
class Certs:
    """A certificate authority and the server certificate it signed (localhost, 127.0.0.1)."""

    ca: Path
    cert: Path
    key: Path


def make_certs(folder: Path, name: str = "GRASP Guard demo site") -> Certs:
    """A fresh CA and a server certificate it signed for ``localhost`` and ``127.0.0.1``.

    Args:
        folder: where to write ``site-ca.pem``, ``site-cert.pem`` and ``site-key.pem``.
        name: the CA's common name (`` CA`` is appended).
    """
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=CERT_DAYS))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(valid[0]).not_valid_after(valid[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0]).not_valid_after(valid[1])
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    certs = Certs(folder / "site-ca.pem", folder / "site-cert.pem", folder / "site-key.pem")
    certs.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return certs


@dataclass(frozen=True)
class Upload:
    """A photo as the site received it.

    Attributes:
        filename: the file name the client gave.
        content_type: the part's media type.
        data: the bytes.
    """

    filename: str
    content_type: str
    data: bytes

    def describe(self) -> dict[str, str | int]:
        return {"filename": self.filename, "content_type": self.content_type,
                "length": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest()}


@dataclass
class Inbox:
    """The last upload the site received (None before the first)."""

    last: Upload | None = None


INBOX = web.AppKey("inbox", Inbox)


def create_app() -> web.Application:
    """The photo site, with an empty inbox."""
    app = web.Application(client_max_size=MAX_UPLOAD)
    app[INBOX] = Inbox()
    app.router.add_get("/", _page)
    app.router.add_post(UPLOAD_PATH, _upload)
    app.router.add_get(RECEIVED_PATH, _received)
    app.router.add_get(RECEIVED_PATH + ".json", _received_json)
    return app


def server_context(certs: Certs) -> ssl.SSLContext:
    """The TLS context serving ``certs``' server certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    return context


@contextlib.asynccontextmanager
async def serve(app: web.Application, certs: Certs, host: str = "127.0.0.1",
                port: int = 0) -> AsyncIterator[int]:
    """Serve ``app`` over HTTPS on ``host:port`` (0: a free port); yields the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=server_context(certs))
        await site.start()
        bound = int(runner.addresses[0][1])
        logger.info("demo site on https://%s:%d/", host, bound)
        yield bound
    finally:
        await runner.cleanup()


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


async def _upload(request: web.Request) -> web.Response:
    form = await request.post()
    photo = form.get(UPLOAD_FIELD)
    if not isinstance(photo, web.FileField):
        raise web.HTTPBadRequest(text=f"expected a file in the form field {UPLOAD_FIELD!r}")
    upload = Upload(photo.filename, photo.content_type, photo.file.read())
    request.app[INBOX].last = upload
    logger.info("received %s (%d bytes)", upload.filename, len(upload.data))
    return web.json_response(upload.describe())


def _last(request: web.Request) -> Upload:
    upload = request.app[INBOX].last
    if upload is None:
        raise web.HTTPNotFound(text="nothing received yet")
    return upload


async def _received(request: web.Request) -> web.Response:
    upload = _last(request)
    return web.Response(body=upload.data, content_type=upload.content_type,
                        headers={"Cache-Control": "no-store"})


async def _received_json(request: web.Request) -> web.Response:
    return web.json_response(_last(request).describe(), headers={"Cache-Control": "no-store"})


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GRASP Guard demo site</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 62em; margin: 2em auto; padding: 0 1em; }
  .pair { display: flex; gap: 1em; } figure { flex: 1; margin: 0; }
  img { max-width: 100%; } code { word-break: break-all; }
</style></head>
<body>
<h1>Demo photo site</h1>
<p>Pick a face photo. This page posts it with <code>fetch()</code> and <code>FormData</code>,
as a social site's script does. Through the GRASP Guard proxy, the site receives the
protected copy: same look, different bytes.</p>
<input type="file" name="photo" accept="image/*">
<p id="status"></p>
<div class="pair">
  <figure><img id="sent" alt=""><figcaption id="sent-info"></figcaption></figure>
  <figure><img id="received" alt=""><figcaption id="received-info"></figcaption></figure>
</div>
<script>
const $ = (id) => document.getElementById(id);
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

async function showReceived(sentHash) {
  const resp = await fetch("/received.json", {cache: "no-store"});
  if (!resp.ok) { $("status").textContent = "Nothing received yet."; return; }
  const got = await resp.json();
  $("received").src = "/received?" + got.sha256;
  const verdict = sentHash === undefined ? "" :
    got.sha256 === sentHash ? " (identical to what you sent: not protected)"
                            : " (different bytes from what you sent)";
  $("received-info").innerHTML = `The site received <b>${got.filename}</b>: ${got.length}` +
    ` bytes, SHA-256 <code>${got.sha256.slice(0, 16)}</code>${verdict}`;
}

document.querySelector("input[type=file]").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const sentHash = hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
  $("sent").src = URL.createObjectURL(file);
  $("sent-info").innerHTML = `You picked <b>${file.name}</b>: ${file.size} bytes,` +
    ` SHA-256 <code>${sentHash.slice(0, 16)}</code>`;
  $("status").textContent = "Uploading (protection takes a while on a CPU)...";
  const form = new FormData();
  form.append("photo", file);
  const resp = await fetch("/upload", {method: "POST", body: form});
  if (!resp.ok) {
    $("status").textContent = `Refused: ${resp.status} ${await resp.text()}`;
    return;
  }
  $("status").textContent = "Uploaded.";
  await showReceived(sentHash);
});
showReceived();
</script>
</body></html>
"""
