"""The banner `make run` prints: its commands work as printed, in a shell that has none of
the run's environment (MOTO_PORT, AWS_ENDPOINT_URL are set for the run only)."""

import io

import pytest

from airticket.local import ingest
from airticket.local.supervisor import Supervisor, local_environment
from airticket.management.commands.ingest import Command as IngestCommand


def banner_demo_arguments(env: dict) -> list[str]:
    out = io.StringIO()
    Supervisor(env, out).banner("a-token")
    line = next(line for line in out.getvalue().splitlines() if line.strip().startswith("Demo"))
    # "Demo  .venv/bin/python manage.py ingest --api ... demo --keep   (comment)"
    return line.split("(")[0].split()[4:]


@pytest.mark.parametrize("moto_port", ["5000", "18812"])
def test_the_banners_demo_command_reaches_the_runs_moto_from_a_plain_shell(moto_port, monkeypatch):
    env = local_environment({"PORT": "18811", "MOTO_PORT": moto_port})
    arguments = banner_demo_arguments(env)
    monkeypatch.delenv("MOTO_PORT", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    options = IngestCommand().create_parser("manage.py", "ingest").parse_args(arguments)

    assert options.api == "http://127.0.0.1:18811"
    assert (options.aws_endpoint or ingest.default_aws_endpoint(options.api)) == f"http://127.0.0.1:{moto_port}"
    assert options.steps == ["demo"] and options.keep
