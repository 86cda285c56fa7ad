"""Where the project's non-Python files live (templates, static assets, migrations).

A checkout (editable install) finds them next to the package; an image that installs the
package elsewhere sets LMS_ROOT to the folder holding them.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("LMS_ROOT") or Path(__file__).resolve().parent.parent)
TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"
MIGRATIONS = ROOT / "migrations"
ALEMBIC_INI = ROOT / "alembic.ini"
