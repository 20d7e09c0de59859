"""Simulated devices speaking their real protocols on 127.0.0.1: OCPP stations (`volthaus
simulate`, the benchmark), Shelly relays, Modbus relay modules and apartment meters (the tests and
`volthaus serve --demo`, through `demo_site.demo_devices`)."""
