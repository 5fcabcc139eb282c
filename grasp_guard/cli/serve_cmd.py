"""`grasp-guard serve`: run the protection service (``POST /v1/protect``) until interrupted."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from grasp_guard.config import SERVICE_CONFIG_ENV
from grasp_guard.service.settings import BACKENDS, TOKEN_ENV, load_settings, parse_autoscale

logger = logging.getLogger(__name__)


def _models(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected one or more model names, comma-separated")
    return names


def _autoscale(value: str) -> tuple[int, int]:
    try:
        return parse_autoscale(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``serve`` command."""
    parser = subparsers.add_parser(
        "serve", help="Run the protection service.",
        description="Serve POST /v1/protect, /healthz, /readyz and /metrics. Without "
                    "arguments: the embedded defaults (the default surrogates on the GPU "
                    "when there is one, else the CPU, on 127.0.0.1:8765).",
    )
    parser.add_argument("--host", help="Address to bind (default 127.0.0.1). Any address but "
                                       "loopback requires a token.")
    parser.add_argument("--port", type=int, help="TCP port (default 8765; 0: any free port).")
    parser.add_argument("--config", type=Path,
                        help=f"Settings file (default: ${SERVICE_CONFIG_ENV}, else the shipped "
                             "service.yaml, which holds the embedded defaults).")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto).")
    parser.add_argument("--models", type=_models,
                        help="Surrogate editors, comma-separated (default: the zoo's default set).")
    parser.add_argument("--max-batch", type=int, help="Most face crops optimised together.")
    parser.add_argument("--queue-size", type=int,
                        help="Requests admitted at once; beyond, 429 with Retry-After.")
    parser.add_argument("--max-bytes", type=int, help="Largest request body in bytes (413).")
    parser.add_argument("--max-pixels", type=int, help="Largest decoded image in pixels (413).")
    parser.add_argument("--token",
                        help=f"Bearer token required on every request but /healthz. Prefer "
                             f"${TOKEN_ENV}: a flag is visible to other local users.")
    scale = parser.add_argument_group(
        "Ray Serve backend", "Optimise on replicas of a Ray Serve deployment (needs the ray "
                             "extra); this process stays the HTTP front.")
    scale.add_argument("--backend", choices=BACKENDS,
                       help="local: the engine in this process (default); ray: Ray Serve "
                            "replicas of it.")
    scale.add_argument("--address",
                       help="The Ray cluster: local (one started and stopped with the service; "
                            "the default), auto (the one running on this machine) or "
                            "ray://host:port.")
    count = scale.add_mutually_exclusive_group()
    count.add_argument("--replicas", type=int,
                       help="Engine replicas (default 1): one per GPU, or per CPU slot.")
    count.add_argument("--autoscale", type=_autoscale, metavar="MIN:MAX",
                       help="Let Ray Serve's autoscaler keep between MIN and MAX replicas.")
    scale.add_argument("--replica-cpus", type=float,
                       help="CPUs reserved per replica (default 1; torch uses as many threads).")
    scale.add_argument("--replica-gpus", type=float,
                       help="GPUs reserved per replica (default: 1 when the device is CUDA, "
                            "or auto on a cluster with a GPU; else 0).")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from grasp_guard.service import SERVER_OPTIONS, create_app

    settings = load_settings(
        args.config, host=args.host, port=args.port, device=args.device, models=args.models,
        max_batch=args.max_batch, queue_size=args.queue_size, max_bytes=args.max_bytes,
        max_pixels=args.max_pixels, token=args.token, backend=args.backend,
        ray_address=args.address, replicas=args.replicas, autoscale=args.autoscale,
        replica_cpus=args.replica_cpus, replica_gpus=args.replica_gpus,
    )
    logger.info("serving with %r", settings)
    web.run_app(create_app(settings), host=settings.host, port=settings.port,
                shutdown_timeout=settings.shutdown_timeout_s, **SERVER_OPTIONS)
    return 0
