"""Lambda packages built from an allow-list.

Zappa zips its working directory minus `exclude` (a deny-list): whatever else lies in the work
tree (`.env`, `.hypothesis/`, notes, `var/`) would ship to every stage. So each stage's package
is made by `zappa package` run inside a build directory that holds only what the stage needs,
copied from the checkout: Zappa then zips that directory (and the lean virtualenv's packages,
which `exclude` still prunes).
"""

import os
import shutil
import subprocess
from pathlib import Path

from django.conf import settings

# What every stage imports: the Django project and its apps (one settings module installs them
# all), and the templates the project overrides.
CODE = ["airticket", "bookings", "admin_portal", "cdc_lambda", "templates"]
# What each stage needs, beyond what Zappa adds itself (its handler and zappa_settings.py).
# `staticfiles` is collectstatic's output, served by WhiteNoise: the admin (query) and the API
# docs (both HTTP stages). `zappa_settings.json` is read by `zappa package` in the build directory.
STAGE_FILES = {
    "command": [*CODE, "staticfiles", "zappa_settings.json"],
    "cdc": [*CODE, "zappa_settings.json"],
    "query": [*CODE, "staticfiles", "zappa_settings.json"],
}
# Inside the allowed directories: no bytecode, and no dotfiles (a `.env` next to the code).
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
# Never on Lambda: the local system's supervisor, moto server and demo ingestor (only the
# local management commands import it).
LOCAL_ONLY = ["airticket/local"]


class PackagingError(Exception):
    pass


def assemble(*, stage: str, source: Path, target: Path) -> list[str]:
    """Copy the stage's allow-list from `source` into a fresh `target`; the names copied."""
    if stage not in STAGE_FILES:
        raise PackagingError(f"unknown stage {stage!r}: use {', '.join(STAGE_FILES)}")
    missing = [name for name in STAGE_FILES[stage] if not (source / name).exists()]
    if missing:
        hint = " (run `manage.py collectstatic` first)" if "staticfiles" in missing else ""
        raise PackagingError(f"{stage}: missing {', '.join(missing)} in {source}{hint}")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in STAGE_FILES[stage]:
        origin = source / name
        if origin.is_dir():
            shutil.copytree(origin, target / name, ignore=SKIPPED, symlinks=False)
        else:
            shutil.copy2(origin, target / name)
    for name in LOCAL_ONLY:
        shutil.rmtree(target / name, ignore_errors=True)
    return STAGE_FILES[stage]


def package(*, stage: str, venv: Path, output: Path, build_dir: Path, source: Path | None = None) -> Path:
    """`zappa package STAGE` run in the stage's assembled build directory, with `venv`'s
    site-packages (the lean Lambda virtualenv) as the dependencies; the zip lands at `output`."""
    venv, output, tree = venv.resolve(), output.resolve(), (build_dir / stage).resolve()  # zappa runs in `tree`
    zappa = venv / "bin" / "zappa"
    if not zappa.exists():
        raise PackagingError(f"{zappa} not found: the Lambda virtualenv needs zappa installed")
    assemble(stage=stage, source=source or Path(settings.BASE_DIR), target=tree)
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(zappa), "package", stage, "-o", str(output)], cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode != 0 or not output.exists():
        raise PackagingError(f"zappa package {stage} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return output
