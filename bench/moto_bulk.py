"""moto as the local system serves it (`airticket.local.moto_server`), plus one request only the
benchmarks use: `POST /_bench/put-items` with `{"account", "region", "table", "items"}`
(items in DynamoDB JSON) writes the items straight into moto's DynamoDB backend, without
recording them on the table's stream.

Why: a benchmark that measures a rebuild needs a table of 200,000 items first. Through
BatchWriteItem moto stores each item on the table's stream as well, and those records then
have to be drained through the bridge and the poller (the whole projection, once) before the
measured run can start from a current stream: that, not the rebuild, is what kept the
200,000-item run from finishing. Everything the benchmark measures still goes through boto3
and moto's HTTP API, as in production.

    python bench/moto_bulk.py 127.0.0.1 5000
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moto.dynamodb.models import dynamodb_backends  # noqa: E402

from airticket.local import moto_server  # noqa: E402

PATH = "/_bench/put-items"


def _bulk_load(app, lock):
    def serve(environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return app(environ, start_response)
        body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        with lock:  # as a DynamoDB request: one at a time
            table = dynamodb_backends[body["account"]][body["region"]].get_table(body["table"])
            stream, table.stream_shard = table.stream_shard, None
            try:
                for item in body["items"]:
                    table.put_item(item)
            finally:
                table.stream_shard = stream
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"written": len(body["items"])}).encode()]

    return serve


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    instance = moto_server.server(host, port)
    instance.app = _bulk_load(instance.app, instance.dynamodb_lock)
    print(f"moto (DynamoDB serialised, bulk load on {PATH}) on http://{host}:{port}", flush=True)
    instance.serve_forever()


if __name__ == "__main__":
    main()
