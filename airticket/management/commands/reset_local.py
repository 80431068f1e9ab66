from django.core.management.base import BaseCommand

from airticket import local


class Command(BaseCommand):
    help = "Forget the local system's data (DynamoDB's saved tables, the read database): the next runlocal starts from nothing."
    requires_system_checks = []

    def handle(self, *args, **options):
        lock = local.forget_saved_state(self.stdout)  # held until the read database is empty
        local.run_steps_here(local.RESET_STEPS, self.stdout)
        self.stdout.write("[runlocal] the read database is empty; the next `make run` starts from nothing")
        lock.file.close()
