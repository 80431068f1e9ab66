from django.core.management.base import BaseCommand

from airticket.local import supervisor


class Command(BaseCommand):
    help = "Forget the local system's data (DynamoDB's saved tables, the read database): the next runlocal starts from nothing."
    requires_system_checks = []

    def handle(self, *args, **options):
        lock = supervisor.forget_saved_state(self.stdout)  # held until the read database is empty
        supervisor.run_steps_here(supervisor.RESET_STEPS, self.stdout)
        self.stdout.write("[runlocal] the read database is empty; the next `make run` starts from nothing")
        lock.file.close()
