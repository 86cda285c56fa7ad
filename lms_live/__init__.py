"""lms_live: a real-time learning platform."""

from importlib.metadata import version

__version__ = version("lms-live")
