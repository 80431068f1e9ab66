"""Local-only machinery: it runs the whole system on one machine and never ships to Lambda.

- `supervisor`: `manage.py runlocal` (`make run`), its children, the run lock and `make reset`;
- `moto_server`: moto server standing in for AWS, with DynamoDB kept on disk across restarts;
- `ingest`: the demo traffic driven through the command API (`manage.py ingest`).

Everything else in `airticket/` (settings, auth, the AWS boundary, observability) ships.
"""
