"""Cold start of the command stage, and the zipped package size of each Zappa stage.

Cold start = from spawning a fresh Python process to the first API Gateway event answered by
`zappa.handler.lambda_handler` (settings file generated offline with
`zappa save-python-settings-file`), against moto. Run after `make package` for the sizes:

    .venv/bin/python bench/cold_start.py [--runs 5]
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
from zappa.handler import lambda_handler
event = json.loads(sys.argv[3])
response = lambda_handler(event, None)
print(json.dumps({"status": response["statusCode"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from airticket.local.supervisor import free_port

    port = free_port()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "SECRET_KEY": "cold-start-benchmark-secret-0123456789abcdef",
    }
    os.environ.update({k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "SECRET_KEY")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "airticket.settings")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        import django

        django.setup()
        from airticket.auth import STAFF, issue_token
        from airticket.provisioning import provision

        provision()
        token = issue_token(role=STAFF)
        with tempfile.TemporaryDirectory() as settings_dir:
            subprocess.run(
                [
                    str(Path(sys.executable).parent / "zappa"),
                    "save-python-settings-file",
                    "command",
                    "-s",
                    str(ROOT / "zappa_settings.json"),
                    "-o",
                    f"{settings_dir}/zappa_settings.py",
                ],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            timings = []
            for run in range(args.runs):
                event = api_gateway_event(token, f"COLD{run}")
                started = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, settings_dir, str(ROOT), json.dumps(event)],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                timings.append(time.perf_counter() - started)
                status = json.loads(out.stdout.strip().splitlines()[-1])["status"]
                assert status == 201, out.stdout + out.stderr
    finally:
        server.stop()
    print(
        f"cold start, command stage ({args.runs} runs): median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms"
    )
    for stage in ("command", "cdc", "query"):
        package = ROOT / "dist" / f"{stage}.zip"
        size = f"{package.stat().st_size / 2**20:.1f} MiB" if package.exists() else "not built (make package)"
        print(f"package {stage}: {size}")


def api_gateway_event(token: str, customer_id: str) -> dict:
    return {
        "httpMethod": "POST",
        "path": "/api/v1/customers",
        "headers": {
            "Host": "abc123.execute-api.us-east-1.amazonaws.com",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        },
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {"stage": "command", "identity": {"sourceIp": "203.0.113.9"}, "path": "/command/api/v1/customers"},
        "body": json.dumps({"customer_id": customer_id, "full_name": "Cold Start"}),
        "isBase64Encoded": False,
    }


if __name__ == "__main__":
    main()
