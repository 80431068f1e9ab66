"""What every benchmark script shares: Django set up on a MariaDB database of its own, and its
section of docs/BENCHMARKS.md rewritten without touching the others'."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def use_database(name: str) -> None:
    """Call before Django is imported: the defaults a benchmark runs with."""
    os.environ.setdefault("DATABASE_URL", f"mysql://root@127.0.0.1:3306/{name}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "airticket.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("AIRTICKET_ENV", "local")


def setup_django(*, migrate: bool = True) -> None:
    """Django on the benchmark's database, created and migrated if need be."""
    import io

    import django
    from django.core.management import call_command

    django.setup()
    if migrate:
        call_command("ensure_database", stdout=io.StringIO())
        call_command("migrate", verbosity=0)


def write_docs(heading: str, body: str) -> None:
    """Replace (or add) only the section under `heading` in docs/BENCHMARKS.md."""
    path = ROOT / "docs" / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{body}\n"
    if heading in text:
        before, _, rest = text.partition(heading)
        after = rest[rest.find("\n## ") + 1 :] if "\n## " in rest else ""
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
