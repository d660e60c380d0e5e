"""glancesync: keep OpenStack Glance images in step across regions and clouds."""

__version__ = "2.0.0"
