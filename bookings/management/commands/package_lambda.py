from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from airticket.packaging import STAGE_FILES, PackagingError, package


class Command(BaseCommand):
    help = "Build a Zappa stage's Lambda zip from the stage's allow-list of files (airticket.packaging), not the whole work tree."

    def add_arguments(self, parser):
        parser.add_argument("stage", choices=sorted(STAGE_FILES))
        parser.add_argument("--venv", type=Path, default=Path(".venv-lambda"), help="the lean virtualenv whose packages ship")
        parser.add_argument("--output", type=Path, help="the zip (default dist/STAGE.zip)")
        parser.add_argument("--build-dir", type=Path, default=Path("dist/build"), help="where the stage's files are assembled")

    def handle(self, *args, stage: str, venv: Path, output: Path | None, build_dir: Path, **options):
        try:
            zip_path = package(stage=stage, venv=venv, output=output or Path("dist") / f"{stage}.zip", build_dir=build_dir)
        except PackagingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{stage}: {zip_path} ({', '.join(STAGE_FILES[stage])})")
