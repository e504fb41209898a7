"""The jobs a worker runs, and the boundary, queue and services they share."""
