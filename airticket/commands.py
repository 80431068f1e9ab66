"""What the project's management commands that talk to AWS share."""

import os

from botocore.exceptions import BotoCoreError, ClientError
from django.core.management.base import BaseCommand, CommandError


class AwsCommand(BaseCommand):
    """A command that reads or writes AWS: when AWS cannot be reached, has no credentials or
    refuses, it ends in one line naming the endpoint, not a botocore traceback. The usual cause
    locally is a shell without `make run`'s environment (docs/RUNBOOK.md gives it)."""

    # What the user can do about it; a command that knows better says so.
    aws_hint = "Against `make run`, export AWS_ENDPOINT_URL and the test credentials first (docs/RUNBOOK.md)."

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except (BotoCoreError, ClientError) as exc:
            endpoint = os.environ.get("AWS_ENDPOINT_URL") or "AWS (no AWS_ENDPOINT_URL set)"
            raise CommandError(f"{endpoint}: {exc}. {self.aws_hint}") from None
