"""prmnet-monitor: a real-time SDR spectrum monitor that tells 5G NR from LTE."""

__version__ = "0.1.0"
