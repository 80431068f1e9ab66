import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections


class Command(BaseCommand):
    help = "Create the MySQL/MariaDB database DATABASE_URL names, if it is missing (SQLite needs nothing)."

    def handle(self, *args, **options):
        db = settings.DATABASES["default"]
        if db["ENGINE"] != "django.db.backends.mysql":
            self.stdout.write(f"database: {db['ENGINE'].rsplit('.', 1)[-1]}, nothing to create")
            return
        name = db["NAME"]
        if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", name):
            raise CommandError(f"database name {name!r}: use letters, digits and '_'")
        # Connect without selecting the database, which may not exist yet.
        connection = connections.create_connection("default")
        connection.settings_dict = {**db, "NAME": ""}
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        connection.close()
        self.stdout.write(f"database {name}: ready")
