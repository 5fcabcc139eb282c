"""The browser extension's build: the unpacked Manifest V3 extension from ``browser/``, the
JavaScript SDK and a compiled policy (MV3 runs no remote code, so all of it is bundled)."""
