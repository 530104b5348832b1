"""The job service (core): submit, status, logs, cancel, wait, list, over the store and the backends."""
