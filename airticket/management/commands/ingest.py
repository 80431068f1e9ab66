import sys

from django.core.management.base import CommandError

from airticket.commands import AwsCommand
from airticket.local import ingest


class Command(AwsCommand):
    # Steps 10 and 11 talk to AWS directly: a wrong moto port is the usual cause.
    aws_hint = "Steps 10 and 11 reach AWS directly; name it with --aws-endpoint."
    help = "The lab's data ingestor: an interactive menu, or scripted steps (numbers or 'demo') over HTTP."

    def add_arguments(self, parser):
        parser.add_argument(
            "steps", nargs="*", help="step numbers 1-11, 'demo' (the lab's run) or 'seed' (a realistic day); none = interactive menu"
        )
        parser.add_argument("--keep", action="store_true", help="after the steps, seed a realistic day (the demo ends by truncating)")
        parser.add_argument("--api", default="http://127.0.0.1:8000", help="base URL of the running system")
        parser.add_argument("--token", help="staff bearer token (default: issue one with this checkout's secret)")
        parser.add_argument(
            "--aws-endpoint", help="AWS endpoint for steps 10-11 (default: AWS_ENDPOINT_URL, or moto on 127.0.0.1:MOTO_PORT)"
        )
        parser.add_argument("--flight-date", help="the date the demo books (default: tomorrow)")
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the read model")

    def handle(self, *args, steps, keep, api, token, aws_endpoint, flight_date, timeout, **options):
        ingest.configure_aws(aws_endpoint or ingest.default_aws_endpoint(api))
        if not token:
            from airticket.auth import STAFF, issue_token

            token = issue_token(role=STAFF)
        try:
            ingestor = ingest.Ingestor(api=api, token=token, out=self.write, wait_timeout=timeout)
            if flight_date:
                ingestor.flight_date = flight_date
            if steps:
                for number in ingest.parse_steps(steps + (["seed"] if keep else [])):
                    ingestor.run_step(number)
            else:
                self.interactive(ingestor)
        except (ingest.IngestError, ValueError) as exc:
            raise CommandError(str(exc)) from None

    def write(self, text: str = "", end: str = "\n") -> None:
        self.stdout.write(text, ending=end)
        self.stdout.flush()

    def interactive(self, ingestor: ingest.Ingestor) -> None:
        while True:
            self.write("\n".join(f"{n:>2}. {name}" for n, name in ingest.MENU))
            self.write("choose: ", end="")
            choice = sys.stdin.readline()
            if not choice or choice.strip() == "12":
                return
            try:
                ingestor.run_step(ingest.parse_steps([choice.strip()])[0])
            except (ingest.IngestError, ValueError) as exc:
                self.stderr.write(f"error: {exc}")
