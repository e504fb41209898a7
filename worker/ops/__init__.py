"""The ``mull`` command and what operators run and read: status, liveness, start-up checks, supervision."""
