"""The one exception tree of prmnet-monitor.

Every error a user can cause or meet derives from :class:`MonitorError`; the command line turns
it into one clear line on stderr and an exit status (2 for bad input, 1 for a failing radio or
machine), never a traceback.
"""

from __future__ import annotations

__all__ = ["DeviceError", "InputError", "MonitorError"]


class MonitorError(Exception):
    """Base class of every error prmnet-monitor reports to its user."""

    exit_status = 1


class InputError(MonitorError):
    """Bad input: an argument, a file or a recording that cannot be used as given."""

    exit_status = 2


class DeviceError(MonitorError):
    """A radio or the machine failed: no device, a lost connection, a driver error."""

    exit_status = 1
