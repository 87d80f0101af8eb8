"""The seed report's two designs, rebuilt faithfully to be measured beside the gateway."""
