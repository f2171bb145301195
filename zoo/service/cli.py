"""``zoo serve --index INDEX [--host 127.0.0.1] [--port 8000] [--workers N]``.

Everything is checked before the server starts (the extra is installed, the index opens, the
tagger is a tagger, the port is free), each failure a one-line message and exit status 2.
Importing this module imports neither FastAPI nor uvicorn, so ``zoo --help`` works without the
extra.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys

from zoo.service.config import CONFIG_ENV, DEFAULT_TAG_MODEL, Limits, ServiceConfig

INSTALL_HINT = "pip install 'zoo-audio[serve]'"
# Import names of what the extra installs, and the package each comes from.
_NEEDED = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart",
           "faiss": "faiss-cpu"}


def missing_extra() -> list[str]:
    """The packages of the ``serve`` extra that are not installed."""
    return [package for module, package in _NEEDED.items()
            if importlib.util.find_spec(module) is None]


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``zoo serve`` on the ``zoo`` command's subparsers."""
    p = sub.add_parser(
        "serve", help="serve catalogue search and tagging over HTTP, with a web page",
        description="A web service over a `zoo index` catalogue: POST /similar and POST /tag "
                    "(an audio file in, JSON out), GET /catalogue/ID/audio, GET /health, a web "
                    "page at / and the OpenAPI docs at /docs. Needs " + INSTALL_HINT + ".")
    p.add_argument("--index", required=True, metavar="INDEX", help="index directory (zoo index)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 listens on every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (default: 1); each loads the models once")
    p.add_argument("--tag-model", default=DEFAULT_TAG_MODEL, metavar="PRESET",
                   help=f"tagger of POST /tag (default: {DEFAULT_TAG_MODEL}; 'none': no /tag)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB",
                   help="largest upload accepted, MiB (default: 20)")
    p.add_argument("--max-seconds", type=float, default=600.0, metavar="S",
                   help="longest recording accepted, seconds (default: 600)")
    p.add_argument("--decode-timeout", type=float, default=30.0, metavar="S",
                   help="seconds one upload may take to decode (default: 30)")
    p.add_argument("--max-pending", type=int, default=32, metavar="N",
                   help="requests in progress per worker before more are answered 503 "
                        "(default: 32)")
    p.add_argument("--decoders", type=int, default=2, metavar="N",
                   help="decoder processes per worker (default: 2)")
    p.add_argument("--log-level", default="info",
                   choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=cmd_serve)


def _port_problem(host: str, port: int) -> str | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        return f"cannot listen on {host}: {err}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            return f"cannot listen on {host}:{port}: {err.strerror or err}"
    return None


def _config(args: argparse.Namespace) -> tuple[ServiceConfig | None, str]:
    """The configuration, or None and why not (the index and tagger are opened to check)."""
    from zoo.errors import ZooError

    if not 0 <= args.port <= 65535:
        return None, f"--port must be 0-65535, got {args.port}"
    if args.workers < 1:
        return None, f"--workers must be >= 1, got {args.workers}"
    try:
        limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2 ** 20),
                        max_audio_seconds=args.max_seconds,
                        decode_timeout_seconds=args.decode_timeout,
                        max_pending=args.max_pending, decoders=args.decoders)
    except ValueError as err:
        return None, f"bad limit: {err}"
    tag_model = None if args.tag_model.lower() == "none" else args.tag_model
    try:
        from zoo.search import load_index

        index = load_index(args.index)
        if tag_model is not None:
            from zoo.hub import resolve_config

            if not resolve_config(tag_model).tags:
                return None, (f"--tag-model {tag_model!r} has no tags (an embedding model): "
                              "give a tagger, e.g. musicnn_msd, or none")
    except (ZooError, OSError) as err:
        return None, str(err)
    summary = (f"{len(index)} files, model {index.model.preset}, {index.level} level, "
               f"tagger {tag_model or 'none'}")
    return ServiceConfig(index=os.path.abspath(args.index), tag_model=tag_model, limits=limits,
                         verify=False), summary


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the arguments, then run the server until interrupted."""
    missing = missing_extra()
    if missing:
        print(f"zoo serve: needs {', '.join(missing)}, which "
              f"{'is' if len(missing) == 1 else 'are'} not installed: {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    config, summary = _config(args)
    if config is None:
        print(f"zoo serve: {summary}", file=sys.stderr)
        return 2
    problem = _port_problem(args.host, args.port)
    if problem:
        print(f"zoo serve: {problem}", file=sys.stderr)
        return 2
    import uvicorn

    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"zoo serve: {summary}; http://{host}:{args.port}/ (API docs: /docs)",
          file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"zoo serve: listening on {args.host}: whoever reaches this machine can search "
              "the catalogue and download its files", file=sys.stderr, flush=True)
    os.environ[CONFIG_ENV] = config.to_json()
    if args.workers == 1:
        from zoo.service.app import create_app_from_env

        uvicorn.run(create_app_from_env(), host=args.host, port=args.port,
                    log_level=args.log_level)
    else:  # uvicorn starts each worker from an import string; the config is in the env
        uvicorn.run("zoo.service.app:create_app_from_env", factory=True, host=args.host,
                    port=args.port, workers=args.workers, log_level=args.log_level)
    return 0
