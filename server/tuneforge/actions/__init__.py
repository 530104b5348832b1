"""Actions: what a face asks for, done once for every face (train, calibrate, export, demo, setup check).

An action composes the core (dataset doctor, planner, job service, gguf) and returns typed results.
"""
