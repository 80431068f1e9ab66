"""moto server for local runs and tests, with DynamoDB requests made atomic as on AWS.

AWS runs each DynamoDB request atomically. moto does not: a transaction checks and applies its
items one by one with no lock, and rolls back by restoring a copy of the whole table, undoing
what other threads wrote meanwhile (concurrent bookings would oversell a flight). So DynamoDB
(and DynamoDB Streams) requests are serialised; other services, such as SQS long polls, stay
concurrent.

    python -m airticket.moto_local 127.0.0.1 5000
"""

import contextlib
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server


def one_dynamodb_request_at_a_time(app):
    lock = threading.Lock()

    def serialised(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return serialised


def server(host: str, port: int) -> BaseWSGIServer:
    app = one_dynamodb_request_at_a_time(DomainDispatcherApplication(create_backend_app))
    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)


def start_in_thread(host: str, port: int) -> BaseWSGIServer:
    """For tests: serve in a daemon thread; call `.shutdown()` to stop."""
    instance = server(host, port)
    threading.Thread(target=instance.serve_forever, daemon=True).start()
    return instance


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    print(f"moto (DynamoDB serialised) on http://{host}:{port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server(host, port).serve_forever()
