"""Fleet: find, watch and update every unit across the district with the tools IT already runs.

On a unit: `advertise` (mDNS/DNS-SD `_classroom-edge._tcp` with python-zeroconf), `identity` (the stable unit
id), `unitinfo` (what the heartbeat adds: disk, clock, faults), `selfupdate` (release venvs + `current` link,
rolled back when the services are not healthy). Across the LAN: `discover`. For the district: `collector`
(heartbeats into `store`, the fleet page and its JSON API) and `inventory` (Ansible / Prometheus file_sd).
"""
