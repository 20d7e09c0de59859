"""The one paid-use flow for every device (DESIGN.md): who pays for a badge at a device, the hold,
usage rated with pricing, the stop when credit runs out, and settling once."""
