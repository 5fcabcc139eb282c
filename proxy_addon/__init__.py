"""GRASP Guard's mitmproxy addon: protect face photos in uploads as they leave the machine.

Run it with ``grasp-guard proxy`` (which derives ``allow_hosts`` from the policy and can
start the protection service), or directly::

    mitmdump -s proxy_addon/mitm_entry.py --set grasp_policy=sdk/grasp_sdk/policy.yaml

(the policy shipped with ``grasp_sdk``; ``grasp_sdk.default_policy_path()`` says where an
installed one lies).
"""

from proxy_addon.addon import METADATA_KEY, GraspGuard, Notify
from proxy_addon.decide import Decision, decide
from proxy_addon.hosts import allow_hosts

__all__ = ["METADATA_KEY", "Decision", "GraspGuard", "Notify", "allow_hosts", "decide"]
