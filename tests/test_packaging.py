"""Lambda packages are built from each stage's allow-list (`airticket.packaging`): a stray file in
the work tree stays out of every stage's zip, and what the stage needs is in it.

The zips are made by the real `zappa package`, run against a virtualenv with no packages (the
project's files are what is checked; `make package` gives it the lean Lambda virtualenv)."""

import fnmatch
import importlib.util
import io
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from airticket.packaging import CODE, STAGE_FILES, PackagingError, assemble, package

STRAYS = [
    ".env",
    ".hypothesis/examples/0a1b/2c3d",
    "notes.txt",
    "var/airticket.sqlite3",
    "var/local/moto/snapshot.json",
    "tests/test_secret.py",
    "docs/draft.md",
    "requirements-dev.txt",
    "airticket/.env",  # a dotfile inside an allowed directory
    "bookings/__pycache__/views.cpython-311.pyc",
]
NEEDED = [
    "airticket/settings.py",
    "bookings/views.py",
    "admin_portal/models.py",
    "cdc_lambda/handler.py",
    "templates/admin/locked_out.html",
]
ZAPPAS_OWN = {"handler.py", "zappa_settings.py", "django_zappa_app.py", "package_info.json", "__init__.py"}


@pytest.fixture(scope="module")
def work_tree(tmp_path_factory) -> Path:
    """A copy of the checkout's code, collectstatic's output, and strays next to them."""
    root = tmp_path_factory.mktemp("checkout")
    for name in CODE:
        shutil.copytree(settings.BASE_DIR / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(settings.BASE_DIR / "zappa_settings.json", root)
    (root / "staticfiles" / "admin" / "css").mkdir(parents=True)
    (root / "staticfiles" / "admin" / "css" / "base.css").write_text("body {}")
    for stray in STRAYS:
        (root / stray).parent.mkdir(parents=True, exist_ok=True)
        (root / stray).write_text("SECRET_KEY=leaked")
    return root


@pytest.fixture(scope="module")
def empty_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    (venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages").mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / "zappa").symlink_to(Path(sys.executable).parent / "zappa")
    return venv


def names(zip_path: Path) -> set[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return set(archive.namelist())


@pytest.mark.parametrize("stage", sorted(STAGE_FILES))
def test_a_stray_file_in_the_work_tree_stays_out_of_the_stage_package_and_what_it_needs_is_in(stage, work_tree, empty_venv, tmp_path):
    zip_path = package(stage=stage, venv=empty_venv, output=tmp_path / f"{stage}.zip", build_dir=tmp_path / "build", source=work_tree)

    shipped = names(zip_path)
    assert not set(STRAYS) & shipped
    assert not [name for name in shipped if "/." in f"/{name}" or name.endswith(".pyc")]
    assert set(NEEDED) <= shipped
    assert not [name for name in shipped if name.startswith("airticket/local/")]  # the local system's machinery
    assert {"handler.py", "zappa_settings.py"} <= shipped  # Zappa's own: Lambda's entry point and the stage's settings
    assert ("staticfiles/admin/css/base.css" in shipped) == ("staticfiles" in STAGE_FILES[stage])
    top_level = {name.split("/")[0] for name in shipped}
    assert top_level <= set(STAGE_FILES[stage]) | ZAPPAS_OWN


def test_a_stage_that_serves_static_files_is_not_built_before_collectstatic(work_tree, tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(work_tree, checkout, ignore=shutil.ignore_patterns("staticfiles"))
    with pytest.raises(PackagingError, match=r"query: missing staticfiles .*run `manage.py collectstatic` first"):
        assemble(stage="query", source=checkout, target=tmp_path / "tree")
    assert assemble(stage="cdc", source=checkout, target=tmp_path / "tree") == STAGE_FILES["cdc"]


def test_the_command_builds_the_cdc_package_from_this_checkout(empty_venv, tmp_path):
    out = io.StringIO()
    call_command(
        "package_lambda", "cdc", "--venv", str(empty_venv), "--output", str(tmp_path / "cdc.zip"), "--build-dir", str(tmp_path), stdout=out
    )
    assert out.getvalue().startswith(f"cdc: {tmp_path / 'cdc.zip'}")
    top_level = {name.split("/")[0] for name in names(tmp_path / "cdc.zip")}
    assert top_level <= set(STAGE_FILES["cdc"]) | ZAPPAS_OWN and "cdc_lambda" in top_level


# The runtime's packages whose modules must all ship (what each stage imports, and boto3's).
RUNTIME_PACKAGES = [
    "boto3",
    "botocore",
    "django",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "csp",
    "whitenoise",
    "aws_lambda_powertools",
]


def test_zappas_exclude_patterns_drop_no_module_of_the_runtime_packages():
    # Zappa matches `exclude` against every file and directory name at any depth of the
    # virtualenv's packages too: a project-level name such as "docs" once dropped botocore/docs
    # (and boto3/docs), which botocore imports, so no stage could import boto3. Project-level
    # names are `exclude_glob` (top level only) now; this keeps it so.
    patterns = json.loads((settings.BASE_DIR / "zappa_settings.json").read_text())["base"]["exclude"]
    harmless = {"__pycache__", "*.pyc"}
    dropped = []
    for package_name in RUNTIME_PACKAGES:
        root = Path(importlib.util.find_spec(package_name).origin).parent
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
            for name in subdirectories + files:
                hits = [p for p in patterns if p not in harmless and fnmatch.fnmatch(name, p)]
                if hits:
                    dropped.append((str(Path(directory, name).relative_to(root.parent)), hits))
    assert dropped == []
