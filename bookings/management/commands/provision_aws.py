from django.conf import settings
from django.core.management.base import CommandError

from airticket import stack as data_stack
from airticket.commands import AwsCommand
from airticket.provisioning import ensure_alarms, ensure_stage_throttling, provision
from airticket.provisioning import reshard as reshard_stream


class Command(AwsCommand):
    help = "Create the DynamoDB table, Kinesis stream, DLQ and (on AWS) the streaming destination and CDC trigger. Safe to re-run."

    def add_arguments(self, parser):
        parser.add_argument("--alarms", action="store_true", help="also the CloudWatch alarms, their SNS topic and the dashboard")
        parser.add_argument("--throttling", action="store_true", help="also API Gateway's stage throttle on the Zappa HTTP stages")
        parser.add_argument("--stack", action="store_true", help="instead: deploy infra's CloudFormation stack through a change set")
        parser.add_argument("--cdc-function-deployed", action="store_true", help="with --stack: the CDC function exists, add its trigger")
        parser.add_argument(
            "--reshard", action="store_true", help="also move the stream to KINESIS_SHARDS open shards (UpdateShardCount, at most x2 or /2)"
        )
        parser.add_argument("--yes", action="store_true", help="with --stack: apply an update's change set (else it is shown and left)")

    def handle(
        self, *args, alarms: bool, throttling: bool, stack: bool, cdc_function_deployed: bool, yes: bool, reshard: bool = False, **options
    ):
        if stack:
            lines = data_stack.deploy(stack_name=settings.STACK_NAME, cdc_function_deployed=cdc_function_deployed, confirm_update=yes)
        else:
            lines = provision()
            if reshard:
                try:
                    lines.append(reshard_stream())
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
            lines += ensure_alarms() if alarms else []
            lines += ensure_stage_throttling() if throttling else []
        for line in lines:
            self.stdout.write(line)
