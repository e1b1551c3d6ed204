"""The ``cosmobac dashboard`` command (registered through ``register_commands``)."""

from __future__ import annotations

import ipaddress

import click

from ..hookspecs import hookimpl
from ..values import click_callback, duration

__all__ = ["dashboard_command", "is_loopback", "register_commands"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _options(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"write KEY=VALUE, got {item!r}", ctx=ctx, param=param)
        options[key.strip()] = value
    return options


@click.command(name="dashboard")
@click.argument("configs", metavar="[CONFIG]...", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--fleet",
    metavar="SOURCE",
    help="Show a fleet through a fleet source instead of pipeline files, e.g. 'bacalhau' "
    "(cosmobac-bacalhau): every node's status, polled on the nodes.",
)
@click.option(
    "--fleet-option",
    "fleet_options",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_options,
    help="An option of the fleet source (repeatable), e.g. api=127.0.0.1:1234, select=region=eu.",
)
@click.option(
    "--fleet-every",
    default="30s",
    show_default=True,
    callback=click_callback(duration, positive=True, minimum=1.0),
    help="How often to poll the fleet source.",
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
def dashboard_command(
    configs: tuple[str, ...],
    fleet: str | None,
    fleet_options: dict[str, str],
    fleet_every: float,
    port: int,
    host: str,
) -> None:
    """Serve a live web page of pipelines: health of every sink, each sensor's series with
    anomaly labels and detections (zoomable), and the latest detections.

    One CONFIG shows that node; several show a fleet: one health row per node, each opening that
    node's page. The stores are only read (never created, no consumer registered). With --fleet
    SOURCE (and no CONFIG), the fleet's nodes come from a fleet source such as 'bacalhau': one
    health row per node, each opening that node's status. Needs cosmobac[dashboard]."""
    from . import require_extra

    require_extra()
    if bool(configs) == bool(fleet):
        raise click.UsageError("give pipeline files (CONFIG...) or --fleet SOURCE, one of them")
    if fleet_options and not fleet:
        raise click.UsageError("--fleet-option goes with --fleet")
    import uvicorn

    from .app import create_app

    remote = None
    if fleet:
        from ..config import ComponentConfig
        from ..errors import ConfigError
        from .fleet import RemoteFleet

        table = {"plugin": fleet, **fleet_options}
        try:
            source = ComponentConfig.from_table("fleet", table, where="--fleet").build()
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--fleet / --fleet-option") from None
        remote = RemoteFleet(source, name=fleet, every=fleet_every)

    if not is_loopback(host):
        click.echo(
            f"warning: --host {host} is not loopback: anyone who can reach this machine on port "
            f"{port} can read the dashboard (it has no authentication)",
            err=True,
        )
    app = create_app(configs, fleet=remote)
    shown = f"[{host}]" if ":" in host else host
    if remote is not None:
        mode = f"the {fleet} fleet (polled every {fleet_every:g} s)"
    else:
        mode = "fleet of " + str(len(configs)) + " nodes" if len(configs) > 1 else configs[0]
    click.echo(f"dashboard of {mode}: http://{shown}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(dashboard_command)
