"""The OCPP side of the central system: websocket server, station messages, operator commands."""
