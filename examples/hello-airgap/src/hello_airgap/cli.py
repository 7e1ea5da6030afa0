"""Console script: proves the environment works and says which compiled parts loaded."""

from __future__ import annotations

import platform
import socket
import sys
from importlib.metadata import version

import click
import markupsafe
import yaml


@click.command()
@click.option("--name", default=None, help="Who to greet (default: this host's name).")
def main(name: str | None) -> None:
    """Greet from an offline host and report the environment."""
    report = {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "click": version("click"),
        "pyyaml": version("pyyaml"),
        "pyyaml_c_loader": bool(getattr(yaml, "__with_libyaml__", False)),
        "markupsafe": version("markupsafe"),
        "markupsafe_speedups": markupsafe.Markup.__module__ == "markupsafe"
        and hasattr(markupsafe, "_speedups"),
    }
    click.echo(f"Hello {markupsafe.escape(name or report['host'])} from hello-airgap {version('hello-airgap')}")
    click.echo(yaml.safe_dump(report, sort_keys=True).rstrip())


if __name__ == "__main__":
    main()
