"""The daemon's lifecycle, for any service: its processes, spawn, start, stop, monitor."""
