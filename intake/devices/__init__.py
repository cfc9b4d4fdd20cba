"""Enrolled devices: the front desk's alert boards and the patient tablets.

``services`` is the domain (no Flask, used by the CLI, the admin pages and the live
process); ``web`` reads a request's device cookie; ``views`` is the enrollment page at
``/devices/enroll`` where a one-time code from an admin is typed on the device.
"""
