from django.core.management.base import BaseCommand

from cdc_lambda import lifecycle, poller


class Command(BaseCommand):
    help = "Local stand-in for the CDC Lambda's Kinesis event source mapping. Restart-safe; stops on SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="drain every shard, then exit")
        parser.add_argument("--batch-size", type=int, default=None, help="records per handler call (default CDC_BATCH_SIZE)")
        parser.add_argument(
            "--parallelization-factor",
            type=int,
            choices=range(1, 11),
            default=None,
            metavar="1-10",
            help="concurrent batches per shard (default CDC_PARALLELIZATION_FACTOR)",
        )

    def handle(self, *args, once: bool = False, batch_size: int | None = None, parallelization_factor: int | None = None, **options):
        done = poller.run(once=once, stop=lifecycle.stop_on_signals(), batch_size=batch_size, parallelization_factor=parallelization_factor)
        self.stdout.write(f"acknowledged {done.acknowledged} records in {done.batches} batches, dead-lettered {done.dead_lettered}")
