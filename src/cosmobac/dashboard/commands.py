"""The ``cosmobac dashboard`` command (registered through ``register_commands``)."""

from __future__ import annotations

import ipaddress

import click

from ..hookspecs import hookimpl

__all__ = ["dashboard_command", "is_loopback", "register_commands"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command(name="dashboard")
@click.argument(
    "configs", metavar="CONFIG...", nargs=-1, required=True, type=click.Path(dir_okay=False)
)
@click.option(
    "--port", default=8050, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback serves the page, unauthenticated, to "
    "whoever can reach it: it must be given explicitly, and a warning is printed.",
)
def dashboard_command(configs: tuple[str, ...], port: int, host: str) -> None:
    """Serve a live web page of pipelines: health of every sink, each sensor's series with
    anomaly labels and detections (zoomable), and the latest detections.

    One CONFIG shows that node; several show a fleet: one health row per node, each opening that
    node's page. The stores are only read (never created, no consumer registered). Needs
    cosmobac[dashboard]."""
    from . import require_extra

    require_extra()
    import uvicorn

    from .app import create_app

    if not is_loopback(host):
        click.echo(
            f"warning: --host {host} is not loopback: anyone who can reach this machine on port "
            f"{port} can read the dashboard (it has no authentication)",
            err=True,
        )
    app = create_app(configs)
    shown = f"[{host}]" if ":" in host else host
    mode = "fleet of " + str(len(configs)) + " nodes" if len(configs) > 1 else configs[0]
    click.echo(f"dashboard of {mode}: http://{shown}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(dashboard_command)
