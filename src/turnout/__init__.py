"""turnout: route every step of an agent workflow to the model it needs."""

__version__ = "0.1.0"
