"""What people see: the status comment, the dashboard, digests, needs-you pings, sinks, labels, markers."""
