"""Stand-ins for outside services, run inside the test process."""
