"""Emulated devices for the amenities tests: real servers on 127.0.0.1 speaking each device's
published protocol, with knobs a test turns (load, clock, faults)."""
