"""Device drivers for relay-switched machines and the meters behind them: each speaks one
device's published protocol and implements the small capabilities of `capabilities`."""
