"""reconciler: government e-mail directories as code."""

from pathlib import Path

__version__ = "0.2.4"


def schemas_folder() -> Path:
    """The folder of the JSON Schemas and the LDAP schema: inside an installed package (the wheel
    maps the top-level `schemas/` to `reconciler/schemas/`), else the checkout's `schemas/`. No
    symbolic link is involved, so an archive or a copy of the checkout works as well."""
    here = Path(__file__).resolve().parent
    installed = here / "schemas"
    return installed if installed.is_dir() else here.parent / "schemas"
