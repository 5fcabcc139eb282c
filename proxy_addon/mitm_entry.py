"""The script mitmproxy loads (``mitmdump -s proxy_addon/mitm_entry.py``)."""

from proxy_addon.addon import GraspGuard

addons = [GraspGuard()]
