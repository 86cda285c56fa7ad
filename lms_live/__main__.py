"""`python -m lms_live` is the `lms-live` command."""

from lms_live.cli import main

main(prog_name="lms-live")
