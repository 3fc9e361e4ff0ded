"""Virtual time: the discrete-event engine, bus models, link and device profiles.

``docs/timing.md`` is the guide; the names below are the API the runtime integrates against.
"""

from xv_core.profiles import PROFILES, LinkProfile, disk_profile, get_profile
from xv_core.timing.devices import DEFAULT_DEVICE_PROFILES, DeviceProfile, device_profile
from xv_core.timing.engine import LOG_KINDS, Activity, Timeline, TimelineEvent
from xv_core.timing.models import BUILTIN_MODELS, FIFO, IDEAL, SHARED, TCP, BusModel
from xv_core.timing.topology import Link, NoRouteError, Route

__all__ = [
    "Activity", "BUILTIN_MODELS", "BusModel", "DEFAULT_DEVICE_PROFILES", "DeviceProfile", "FIFO",
    "IDEAL", "LOG_KINDS", "Link", "LinkProfile", "NoRouteError", "PROFILES", "Route", "SHARED",
    "TCP", "Timeline", "TimelineEvent", "device_profile", "disk_profile", "get_profile",
]
