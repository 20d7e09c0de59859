"""Tests of relay-switched amenities: drivers against emulated devices, the cycle controller."""
